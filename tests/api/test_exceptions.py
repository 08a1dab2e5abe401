"""DRF's and Django's exceptions, mapped to catalogue codes; bare errors of plain views reshaped."""

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.test import APIRequestFactory

from api.exceptions import exception_handler, flatten_errors, to_problem

pytestmark = pytest.mark.urls("tests.api.urls")


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (exceptions.NotAuthenticated(), "token_required", 401),
        (exceptions.AuthenticationFailed("Bad credentials."), "invalid_token", 401),
        (exceptions.PermissionDenied("No."), "forbidden", 403),
        (exceptions.NotFound(), "not_found", 404),
        (exceptions.MethodNotAllowed("PUT"), "method_not_allowed", 405),
        (exceptions.NotAcceptable(), "not_acceptable", 406),
        (exceptions.UnsupportedMediaType("text/plain"), "unsupported_media_type", 415),
        (exceptions.ParseError(), "malformed_request", 400),
        (exceptions.ValidationError({"name": ["Required."]}), "validation_error", 400),
        (exceptions.Throttled(wait=12.2), "quota_exceeded", 429),
        (exceptions.APIException(), "server_error", 500),
        (Http404(), "not_found", 404),
        (DjangoPermissionDenied(), "forbidden", 403),
        (RequestDataTooBig("Too big."), "payload_too_large", 413),
    ],
)
def test_exceptions_map_to_codes(exc, code, status):
    problem = to_problem(exc)
    assert (problem.code, problem.status_code) == (code, status)


def test_unknown_exceptions_are_left_to_django():
    assert to_problem(RuntimeError("bug")) is None
    request = APIRequestFactory().get("/api/x")
    assert exception_handler(RuntimeError("bug"), {"request": request, "view": None}) is None


def test_throttled_says_when_to_retry():
    request = APIRequestFactory().get("/api/x")
    response = exception_handler(exceptions.Throttled(wait=12.2), {"request": request, "view": None})
    assert response.status_code == 429
    assert response["Retry-After"] == "13"  # rounded up: never too early
    assert response["Content-Type"] == "application/problem+json"


def test_an_authentication_failure_from_another_class_carries_the_challenge():
    request = APIRequestFactory().get("/api/x")
    response = exception_handler(exceptions.AuthenticationFailed("Nope."), {"request": request, "view": None})
    assert response["WWW-Authenticate"] == (
        'Bearer realm="marketplace", error="invalid_token", error_description="Nope."'
    )


def test_nested_validation_errors_flatten_to_pointers():
    class Item(serializers.Serializer):
        qty = serializers.IntegerField(min_value=1)

    class Order(serializers.Serializer):
        note = serializers.CharField(max_length=2)
        items = Item(many=True)

        def validate(self, attrs):
            raise serializers.ValidationError("Orders are closed.")

    order = Order(data={"note": "long", "items": [{"qty": 1}, {"qty": 0}]})
    assert not order.is_valid()
    found = flatten_errors(order.errors)
    assert [(e["field"], e["pointer"], e["code"]) for e in found] == [
        ("note", "#/note", "max_length"),
        ("items[1].qty", "#/items/1/qty", "min_value"),
    ]
    order = Order(data={"note": "ok", "items": []})
    assert not order.is_valid()
    assert flatten_errors(order.errors) == [
        {"field": None, "pointer": "#", "message": "Orders are closed.", "code": "invalid"}
    ]


@pytest.mark.django_db
def test_a_plain_views_405_is_reshaped_keeping_allow(client):
    response = client.post("/api/test/plain-get-only")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET"
    body = response.json()
    assert body["code"] == "method_not_allowed"
    assert body["detail"] == "POST is not allowed here. Allowed: GET."


@pytest.mark.django_db
def test_a_plain_views_404_does_not_leak_its_message(client):
    response = client.get("/api/test/plain-not-found")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "visits_visit" not in response.content.decode()


@pytest.mark.django_db
def test_successful_responses_are_untouched(client):
    response = client.get("/api/test/plain-get-only")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
