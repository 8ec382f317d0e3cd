import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from fault_server import FaultServer  # noqa: E402


@pytest.fixture(scope="session")
def model_path():
    directory = os.path.join(tempfile.gettempdir(), "inflow-integration-model")
    return harness.train_model(directory)


@pytest.fixture
def broker():
    b = harness.Broker({"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1,
                        "ref-alerts": 2, "ref-dlq": 1})
    yield b
    b.stop()


@pytest.fixture
def provider():
    """A KServe v2 provider that can be told to fail (fault_server.py)."""
    server = FaultServer()
    yield server
    server.stop()
