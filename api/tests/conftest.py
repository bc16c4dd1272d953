import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture
async def async_orm(transactional_db):
    """For async tests that use the ORM: its thread's connection is closed afterwards,
    or the test database could not be dropped at the end of the run."""
    yield
    await sync_to_async(connections.close_all)()
