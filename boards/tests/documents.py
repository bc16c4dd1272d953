"""Dashboards the tests build on."""

import copy


def board(uid="checkout", **changes):
    """A dashboard using every part of the format."""
    document = {
        "uid": uid,
        "title": "Checkout",
        "description": "The checkout service",
        "tags": ["team-a", "prod"],
        "window": "6h",
        "variables": [
            {
                "name": "host",
                "label": "Host",
                "label_of": "host",
                "match": "cpu",
                "multi": True,
                "include_all": True,
            },
            {"name": "env", "label_of": "env", "match": 'cpu{host=~"$host"}'},
        ],
        "visibility": "private",
        "panels": [
            {
                "id": 1,
                "title": "CPU",
                "type": "timeseries",
                "series": ['cpu{host=~"$host"}', 'app_latency{env="$env",quantile!="0.5"}'],
                "unit": "%",
                "decimals": 1,
                "thresholds": {"warning": 80, "critical": 95.5},
                "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
            },
            {
                "id": 2,
                "title": "",
                "type": "stat",
                "series": ["orders"],
                "grid": {"x": 6, "y": 0, "w": 6, "h": 2},
            },
            {
                "id": 3,
                "title": "Errors",
                "type": "table",
                "series": ['{__name__=~"err_.*"}'],
                "grid": {"x": 0, "y": 4, "w": 12, "h": 3},
            },
        ],
    }
    document.update(changes)
    return copy.deepcopy(document)
