import signal

from django.core.management.base import BaseCommand

from notifications.delivery import DeliveryWorker, send_due


class Command(BaseCommand):
    help = (
        "Send pending notification deliveries (e-mail, webhooks). The collector already does "
        "this; run it by hand to flush the queue once (--once) or as an extra sender."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="send what is due now, then exit")
        parser.add_argument("--senders", type=int, default=4, help="parallel sends (default 4)")

    def handle(self, *args, once=False, senders=4, **options):
        if once:
            self.stdout.write(f"Delivered {send_due()}.")
            return
        worker = DeliveryWorker(senders=max(1, senders))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        worker.run()
