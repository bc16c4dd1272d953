"""Alert rules and their history now belong to the `alerts` app (its 0001 takes
them over with their tables): drop them from this app's state only, so no table
or row is touched."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0006_notification_message"),
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AlertEvent"),
                migrations.DeleteModel(name="AlertRule"),
            ],
            database_operations=[],
        ),
    ]
