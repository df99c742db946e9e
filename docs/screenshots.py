"""Screenshots of the app's two tabs (docs/app-track.png, docs/app-set.png) with headless Chromium.

    .venv/bin/python docs/screenshots.py --model demo-out/model --track TRACK --mix MIX

Serves the app on 127.0.0.1, uploads the track / the mix with Selenium, waits for the results and
saves each tab as a PNG (palette-quantised with Pillow to stay small).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save(driver, path: Path) -> None:
    from PIL import Image

    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--track", required=True)
    ap.add_argument("--mix", required=True)
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from test_app import open_browser

    from housex.app import launch

    demo, url = launch(args.model, port=_free_port(), block=False, quiet=True)
    driver = open_browser(1280, 1500)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 300)
        inputs = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))
        inputs[0].send_keys(str(Path(args.track).resolve()))
        wait.until(ec.element_to_be_clickable((By.XPATH, "//button[contains(., 'Classify track')]"))).click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[contains(text(), 'drop(s)') or contains(text(), 'fallback section')]"))
        time.sleep(3)
        _save(driver, Path(args.out) / "app-track.png")

        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Set')]").click()
        time.sleep(1)
        time.sleep(3)
        inputs = [e for e in driver.find_elements(By.CSS_SELECTOR, "input[type=file]")]
        inputs[1 if len(inputs) > 1 else 0].send_keys(str(Path(args.mix).resolve()))
        wait.until(lambda d: d.find_elements(By.XPATH, f"//*[contains(text(), '{Path(args.mix).name}')]"))
        wait.until(ec.element_to_be_clickable((By.XPATH, "//button[contains(., 'Analyse set')]"))).click()
        try:
            wait.until(lambda d: d.find_elements(By.XPATH, "//*[contains(text(), 'BPM')]"))
        except Exception:
            driver.save_screenshot("/tmp/housex-screenshot-failed.png")
            raise
        time.sleep(3)
        _save(driver, Path(args.out) / "app-set.png")
    finally:
        driver.quit()
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
