"""The HTTP front of the stand-in of Kaggle's API (tests/kaggle_standin.py): the kaggle client's requests in,
answers out. `POST /api/v1/<service>/<Method>` (JSON) is answered by the stand-in's method of that name, after
its faults (`slow`, an HTTP status, `after.` one); GET serves a kernel's output files and the data, PUT takes a
submission's upload.
"""

import http.server
import json
import time
import urllib.parse


def handler(standin):
    """The request handler class that serves `standin`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", kind="application/json", headers=()):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a slow fault)
                pass

        def error(self, status, message):
            self.reply(status, json.dumps({"code": status, "message": message}).encode())

        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            if path == "/_data/digit-recognizer.zip":
                return self.reply(200, standin.data_zip(), "application/zip")
            if fault := standin.fault_status("files"):
                return self.error(fault, "injected fault")
            target = (standin.scratch / urllib.parse.unquote(path.removeprefix("/_files/"))).resolve()
            if not path.startswith("/_files/") or standin.scratch.resolve() not in target.parents:
                return self.error(404, "no such file")
            self.reply(200, target.read_bytes(), "application/octet-stream")

        def do_PUT(self):
            if fault := standin.fault_status("upload"):
                return self.error(fault, "injected fault")
            token = urllib.parse.urlsplit(self.path).path.removeprefix("/_upload/")
            standin.uploads[token] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.reply(200, b"{}")

        def do_POST(self):
            method = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
            # a slow answer still does its work, as Kaggle does when the client gives up waiting
            time.sleep(float(standin.faults.get(f"slow.{method}", standin.faults.get("slow", 0))))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.headers.get("Authorization") not in standin.authorizations:
                return self.error(401, "Unauthenticated")
            if fault := standin.fault_status(method):
                return self.error(fault, f"injected fault {fault}")
            if method == "DownloadDataFiles":
                return self.reply(302, b"", headers=[("Location", "http://localhost/_data/digit-recognizer.zip")])
            answer = getattr(standin, method, None)
            if answer is None or not method[0].isupper():
                return self.error(404, f"stand-in does not know {method}")
            try:
                response = answer(body)
            except LookupError as missing:
                return self.error(404, str(missing))
            except PermissionError as refused:
                return self.error(400, str(refused))
            except OverflowError as refused:  # what Kaggle answers with 500
                return self.error(500, str(refused))
            if fault := standin.fault_status(f"after.{method}"):  # it took effect; the answer is lost
                return self.error(fault, f"injected fault {fault} after the call took effect")
            self.reply(200, type(response).to_json(response).encode())

    return Handler
