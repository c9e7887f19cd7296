"""A stand-in for `infscene serve`, standard library only, for the live-layer tests.

The plugin's side of a live layer (start, layer, status line, stop) must be testable without torch and without the real
server; this script speaks the same contract. Run as `python stand_in_serve.py -m infscene serve SOURCE --port 0
[...] --progress json` (the tests make an "engine python" that execs it), it serves one fixed 256-px PNG at
/{z}/{x}/{y}.png on 127.0.0.1 and prints the JSON-lines events:

- `serving` when it listens (zoom 12-19, native 16), then `tiles` with 3 rendering and 12 queued, as if a map had
  asked for a screenful, and after each tile it serves `tiles` with nothing queued or rendering (idle);
- with INFSCENE_STAND_IN=fail: an `error` event and exit code 1, as the engine does for a source it cannot serve;
- with INFSCENE_STAND_IN=stubborn: SIGTERM is ignored, so only the plugin's kill after the grace period stops it.

SIGTERM otherwise shuts it down with exit code 0, as the contract says.
"""
import argparse
import json
import os
import signal
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TILE = 256
ZOOMS = {"min_zoom": 12, "max_zoom": 19, "native_zoom": 16}
BURST = {"queued": 12, "rendering": 3, "done": 0, "cached": 0}


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def solid_png(rgba: bytes = bytes((40, 160, 90, 255))) -> bytes:
    """A TILE x TILE PNG of one colour (8-bit RGBA, no filter)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", TILE, TILE, 8, 6, 0, 0, 0)
    rows = b"".join(b"\x00" + rgba * TILE for _ in range(TILE))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Tiles(BaseHTTPRequestHandler):
    png = solid_png()
    done = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or not parts[2].endswith(".png"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.png)))
        self.end_headers()
        self.wfile.write(self.png)
        with Tiles.lock:
            Tiles.done += 1
            emit("tiles", queued=0, rendering=0, done=Tiles.done, cached=0)

    def log_message(self, *_args: object) -> None:
        """Quiet, as the engine's stderr carries only its one-line errors."""


def main(argv: list) -> int:
    if argv[:3] != ["-m", "infscene", "serve"]:
        print(f"stand-in serve: unexpected command {argv}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    for flag in ("--port", "--scale", "--target-res", "--model", "--seed", "--detail", "--cache", "--progress"):
        parser.add_argument(flag)
    args = parser.parse_args(argv[3:])
    mode = os.environ.get("INFSCENE_STAND_IN", "")
    if mode == "fail":
        emit("error", message=f"{os.path.basename(args.source)}: the stand-in refuses this source")
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", int(args.port)), Tiles)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = server.server_address[1]
    emit("serving", url=f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png", port=port, **ZOOMS)
    emit("tiles", **BURST)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
