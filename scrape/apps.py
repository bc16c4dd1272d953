from django.apps import AppConfig


class ScrapeConfig(AppConfig):
    name = "scrape"
    verbose_name = "Scrape targets"
