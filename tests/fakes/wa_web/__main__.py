"""``python -m tests.fakes.wa_web --port 8900``: serve the fake until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.fakes.wa_web import FakeWhatsAppWeb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.wa_web", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--ref-interval", type=float, default=20.0, help="seconds between QR ref rotations")
    parser.add_argument("--qr-idle-after", type=int, default=0,
                        help="go UNPAIRED_IDLE after this many refs (0: never)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    fake = FakeWhatsAppWeb(port=args.port, host=args.host, ref_interval=args.ref_interval,
                           qr_idle_after=args.qr_idle_after, verbose=args.verbose).start()
    print(f"fake WhatsApp Web on {fake.url}  (phone: {fake.url}phone, state: {fake.url}control/state)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
