"""``manage.py verify_ledger``: walk every patient's consent chain; exit 1 naming the first event
that was changed, removed or reordered."""

from django.core.management.base import BaseCommand, CommandError

from consent.ledger import verify_all
from consent.models import LedgerEvent


class Command(BaseCommand):
    help = "Verify the consent ledger's hash chains. Exits non-zero at the first tampered event."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Report every broken chain, not only the first.")

    def handle(self, *args, **options):
        problems = []
        for problem in verify_all():
            problems.append(problem)
            if not options["all"]:
                break
        if problems:
            for problem in problems:
                self.stderr.write(f"TAMPERED {problem}")
            raise CommandError(f"The consent ledger failed verification: {problems[0]}", returncode=1)
        self.stdout.write(f"The consent ledger is intact: {LedgerEvent.objects.count()} events verified.")
