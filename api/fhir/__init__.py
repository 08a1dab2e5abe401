"""The FHIR R4 core at /fhir/r4/: read and search of the clinical store (``api.models``).

- ``search``: search parameter parsing (dates with prefixes, tokens, references), ``_count``, and the
  signed keyset cursor that pages a searchset;
- ``render``: a stored row as a FHIR resource (``meta`` from the row), searchset Bundles, the
  ``application/fhir+json`` renderer;
- ``resources``: what each served type stores, its search parameters and how each filters;
- ``access``: who may see which rows (environment, the patient in context, consent);
- ``views``: the read and search views, one pair per type, registered in ``api.fhir_urls``.
"""
