"""``manage.py index_docs``: bring the docs search index (``DocSection``) in line with the docs.

Searching re-indexes lazily when the docs change; this does it ahead of the first search (the seed
calls it, and a deploy may). Pages whose rendered HTML is unchanged are left as they are."""

from django.core.management.base import BaseCommand

from portal.search import doc_sections_rebuild


class Command(BaseCommand):
    help = "Index the docs pages and error-code pages for the docs search; unchanged pages are skipped."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild every page's sections, changed or not.")

    def handle(self, *args, **options):
        result = doc_sections_rebuild(force=options["force"])
        self.stdout.write(
            f"Docs search index: {result.pages} pages, {len(result.rebuilt)} re-indexed, {len(result.deleted)} removed."
        )
