"""``manage.py verify_audit``: recompute every sealed batch of the access audit from its events and
walk the chain of batch hashes; exit 1 naming the first event or batch that was changed, removed,
inserted or reordered."""

from django.core.management.base import BaseCommand, CommandError

from api.audit_seal import Tally, verify_all


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("ch") else f"{n} {noun}s"


class Command(BaseCommand):
    help = "Verify the access audit's sealed batches. Exits non-zero at the first tampered batch or event."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Report every problem, not only the first.")

    def handle(self, *args, **options):
        tally = Tally()
        problems = []
        for problem in verify_all(tally):
            problems.append(problem)
            if not options["all"]:
                break
        if problems:
            for problem in problems:
                self.stderr.write(f"TAMPERED {problem}")
            raise CommandError(f"The access audit failed verification: {problems[0]}", returncode=1)
        self.stdout.write(
            f"The access audit is intact: {_count(tally.events, 'event')} in {_count(tally.batches, 'batch')} "
            f"verified; {_count(tally.unsealed, 'event')} not sealed yet."
        )
        if tally.last_sequence is not None:
            # Compare with the hash logged when that batch was sealed (event audit_batch_sealed):
            # removing the newest batches is the one change the chain cannot show by itself.
            self.stdout.write(f"Last batch: #{tally.last_sequence}, hash {tally.last_hash}.")
        if tally.oldest_unsealed is not None:
            self.stdout.write(f"Oldest unsealed event: {tally.oldest_unsealed.isoformat()}.")
