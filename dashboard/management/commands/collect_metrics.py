import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from alerts.evaluation import AlertEvaluator
from alerts.feed import MetricEventFeed
from alerts.messenger import AlertMessenger
from alerts.provisioning import ProvisioningError
from alerts.provisioning import provision as provision_alert_rules
from audit.services import prune as audit_prune
from boards.provisioning import check_for_changes as provision_dashboards
from dashboard.collector.collector import (
    Collector,
    register_builtin_metrics,
)
from dashboard.rollups import RollupWriter
from hosts.liveness import HostTracker
from hosts.rules import register_host_down_rule
from notifications.delivery import DeliveryWorker
from notifications.services import push_pending
from scrape.scraper import Scraper

logger = logging.getLogger("dashboard.collector.collector")


def provision_alert_rules_quietly(directory):
    # A bad rule file is reported, not fatal: the collector's other work goes on.
    try:
        outcome = provision_alert_rules(directory)
    except (ProvisioningError, OSError) as exc:
        logger.error("alert rules from %s: %s", directory, exc)
    else:
        logger.info("provisioned %d alert rules from %s", len(outcome["applied"]), directory)


AUDIT_PRUNE_EVERY = 3600.0


class Command(BaseCommand):
    help = (
        "Sample host and app metrics and publish one frame per tick on the `metrics` SSE channel. "
        "Runs until SIGTERM or SIGINT; the interval and pause come from the dashboard's controls. "
        "A thread of it writes the long-range history (rollups) to the database and prunes it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ticks", type=int, default=None, help="stop after this many ticks (for smoke checks)"
        )

    def handle(self, *args, ticks=None, **options):
        try:
            created = register_builtin_metrics()
        except DatabaseError as exc:
            raise CommandError(f"cannot register the built-in metrics (is the database migrated?): {exc}")
        if created:
            logger.info("registered metrics: %s", ", ".join(created))
        if register_host_down_rule()[1]:
            logger.info("made the built-in alert rule: Host down")
        if settings.ALERT_RULES_DIR:
            provision_alert_rules_quietly(settings.ALERT_RULES_DIR)
        # Dashboards in DASHBOARDS_DIR: provisioned on the first tick, then whenever a file
        # changes (a chore runs at once, then every so often).
        chores = [(AUDIT_PRUNE_EVERY, audit_prune), (settings.DASHBOARDS_CHECK_SECONDS, provision_dashboards)]
        # Alerts watch this collector's frames (its host's series) and every published value,
        # and which hosts went quiet.
        evaluator = AlertEvaluator(host=settings.COLLECTOR_HOST, feed=MetricEventFeed(), hosts=HostTracker())
        collector = Collector(evaluator=evaluator, outbox=push_pending, chores=chores)
        # Finish the tick in progress and exit 0, so supervisors see a clean stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: collector.stop())
        # Notification deliveries (e-mail, webhooks) go out from here, beside the ticks:
        # every topology runs exactly this process, and it is the one whose alert rules fire.
        deliveries = DeliveryWorker().start()
        # Each alert group's message at the moment its wait ends, not on the tick after.
        messenger = AlertMessenger(evaluator).start()
        logger.info("collector started")
        writer = RollupWriter().start()
        # Scrape targets, on threads of their own: a slow target never delays a tick.
        scraper = Scraper().start()
        try:
            count = collector.run(max_ticks=ticks)
        finally:
            scraper.stop()
            messenger.stop(timeout=15)
            deliveries.stop(timeout=15)
            # One last round, so what this run published is in the rollups before it exits.
            writer.stop()
        logger.info("collector stopped after %d ticks", count)
