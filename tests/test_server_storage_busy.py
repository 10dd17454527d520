"""A storage connection check when the server's bounded pool is full, on a real Jupyter
server (pytest-jupyter): 503 with Retry-After and a message that names what the pool is
busy with generically (checks or validations, not only dataset validations)."""

from __future__ import annotations

import asyncio
import threading

from test_api_contract import call
from test_server_storage import (  # noqa: F401 - fixtures
    dead_endpoint,
    jp_server_config,
    moto_endpoint,
    silent_endpoint,
)

pytest_plugins = ["pytest_jupyter.jupyter_server"]


async def test_a_full_pool_answers_a_storage_check_with_503_naming_checks(jp_fetch, jp_serverapp, jp_root_dir):
    svc = jp_serverapp.web_app.settings["cvat_train"]
    (jp_root_dir / "store").mkdir()
    release = threading.Event()
    capacity = svc.validation_pool.workers + svc.validation_pool.queue
    blockers = [asyncio.ensure_future(svc.run_heavy(release.wait, 300)) for _ in range(capacity)]
    try:
        for _ in range(3000):
            if svc.validation_pool.in_flight == capacity:
                break
            await asyncio.sleep(0.01)
        assert svc.validation_pool.in_flight == capacity
        code, err = await call(jp_fetch, "post", "/storage/check", body={"storage": f"file://{jp_root_dir / 'store'}"})
        assert code == 503, err
        assert f"busy with {capacity} checks or validations" in err["message"], err
        assert "dataset validations" not in err["message"]
    finally:
        release.set()
        await asyncio.gather(*blockers)
    code, check = await call(jp_fetch, "post", "/storage/check", body={"storage": f"file://{jp_root_dir / 'store'}"})
    assert code == 200 and check["ok"], check
