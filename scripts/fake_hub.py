#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests: the machines here have no route to
huggingface.co. It serves model folders under the URL paths and headers the hub uses, as far as a
downloader needs them:

  GET  /api/models/ORG/NAME[/revision/REV] {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /ORG/NAME/resolve/REV/PATH      small files: 200 with ETag (the git blob id),
                                           large files: 302 to /lfs/SHA256 with X-Linked-Etag and
                                           X-Linked-Size (as the hub redirects LFS files to its CDN);
                                           both with X-Repo-Commit; a missing file: 404 with
                                           X-Error-Code: EntryNotFound
  GET  /lfs/SHA256                         the content, with Range (206) support

REV is "main" or the commit (a hash of the served files). With --token, every request must carry
"Authorization: Bearer TOKEN" (else 401). With --cut-after N, the first large-file GET sends its
headers and N bytes and then drops the connection (a test of resumed downloads). Every request
is logged to --log as "METHOD PATH RANGE AUTH" (AUTH: "auth" when the request carried a token).
Large files are redirected to "localhost" rather than "127.0.0.1": another host, as the CDN is. Prints "PORT <n>" once listening.

Usage: fake_hub.py --root DIR [--port 0] [--token T] [--cut-after N] [--log FILE] [--extra-sibling NAME]
                   [--alias OLD/ID=ORG/NAME] [--size-error N]
(DIR holds ORG/NAME model folders.)
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LFS_MIN_SIZE = 1 << 20  # files this large (and weights of any size) are served as LFS objects


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, folder, repo_id):
        self.folder, self.id = folder, repo_id
        self.files = {}  # path -> (size, etag, is_lfs)
        listing = hashlib.sha1()
        for dirpath, _, names in sorted(os.walk(folder)):
            for name in sorted(names):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                data = open(full, "rb").read()
                lfs = len(data) >= LFS_MIN_SIZE or rel.endswith((".safetensors", ".bin"))
                etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
                self.files[rel] = (len(data), etag, lfs)
                listing.update(f"{rel}:{etag}\n".encode())
        self.commit = listing.hexdigest()


def load_repos(root):
    repos = {}
    for org in sorted(os.listdir(root)):
        for name in sorted(os.listdir(os.path.join(root, org))):
            folder = os.path.join(root, org, name)
            if os.path.isdir(folder):
                repos[f"{org}/{name}"] = Repo(folder, f"{org}/{name}")
    return repos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--cut-after", type=int)
    ap.add_argument("--log")
    ap.add_argument("--alias", action="append", default=[],
                    help="OLD_ORG/OLD_NAME=ORG/NAME: a renamed model, answered with a relative 307 as the hub does")
    ap.add_argument("--size-error", type=int, default=0,
                    help="add this to every X-Linked-Size (a server that lies about a file's size)")
    ap.add_argument("--extra-sibling", action="append", default=[],
                    help="a name to list among the files (a hostile listing: '../x')")
    args = ap.parse_args()
    repos = load_repos(args.root)
    aliases = dict(a.split("=", 1) for a in args.alias)
    lfs_objects = {}
    for repo in repos.values():
        for rel, (size, etag, lfs) in repo.files.items():
            if lfs:
                lfs_objects[etag] = os.path.join(repo.folder, rel)
    log_lock = threading.Lock()
    cut = {"left": args.cut_after}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def note(self):
            if args.log:
                with log_lock, open(args.log, "a") as f:
                    auth = "auth" if "Authorization" in self.headers else "-"
                    f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')} {auth}\n")

        def reply(self, status, headers=None, body=b"", send_body=True):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def error(self, status, code, message, extra=None):
            headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
            headers.update(extra or {})
            self.reply(status, headers, json.dumps({"error": message}).encode(), self.command != "HEAD")

        def authorized(self):
            if args.token is None or self.path.startswith("/lfs/") or self.headers.get("Authorization") == f"Bearer {args.token}":
                return True
            self.error(401, "RepoNotFound", "Invalid credentials in Authorization header")
            return False

        def find_repo(self, parts, prefix=""):
            # parts: ORG, NAME, ...; returns (repo, rest) or None after answering (404, or the
            # relative redirect of a renamed model)
            if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in repos:
                return repos[f"{parts[0]}/{parts[1]}"], parts[2:]
            if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in aliases:
                rest = "/".join(parts[2:])
                target = f"{prefix}/{aliases[parts[0] + '/' + parts[1]]}" + (f"/{rest}" if rest else "")
                self.reply(307, {"Location": target}, b"", self.command != "HEAD")
                return None
            self.error(404, "RepoNotFound", "Repository not found")
            return None

        def do_HEAD(self):
            self.handle_request(send_body=False)

        def do_GET(self):
            self.handle_request(send_body=True)

        def handle_request(self, send_body):
            self.note()
            if not self.authorized():
                return
            path = self.path.split("?")[0]
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts[:2] == ["api", "models"]:
                found = self.find_repo(parts[2:], prefix="/api/models")
                if not found:
                    return
                repo, rest = found
                if rest == []:
                    rest = ["revision", "main"]
                if len(rest) != 2 or rest[0] != "revision" or rest[1] not in ("main", repo.commit):
                    return self.error(404, "RevisionNotFound", "Invalid rev id")
                body = {"id": repo.id, "modelId": repo.id, "sha": repo.commit,
                        "siblings": [{"rfilename": p} for p in sorted(repo.files) + args.extra_sibling]}
                return self.reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode(), send_body)
            if parts[0] == "lfs" and len(parts) == 2 and parts[1] in lfs_objects:
                return self.send_file(lfs_objects[parts[1]], parts[1], {}, send_body)
            found = self.find_repo(parts)
            if not found:
                return
            repo, rest = found
            if len(rest) < 3 or rest[0] != "resolve":
                return self.error(404, "EntryNotFound", "Not found")
            if rest[1] not in ("main", repo.commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id")
            rel = "/".join(rest[2:])
            commit = {"X-Repo-Commit": repo.commit}
            if rel not in repo.files:
                return self.error(404, "EntryNotFound", f"{rel} does not exist", commit)
            size, etag, lfs = repo.files[rel]
            if lfs:
                # Another host name for the same server, as the hub's CDN is another host: a client
                # must not send its token there.
                headers = dict(commit)
                headers.update({"Location": f"http://localhost:{self.server.server_port}/lfs/{etag}", "X-Linked-Etag": f'"{etag}"',
                                "X-Linked-Size": str(size + args.size_error), "ETag": f'"{git_blob_id(etag.encode())}"'})
                return self.reply(302, headers, b"", send_body)
            return self.send_file(os.path.join(repo.folder, rel), etag, commit, send_body)

        def send_file(self, full, etag, headers, send_body):
            data = open(full, "rb").read()
            headers = dict(headers)
            headers.update({"ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                            "Content-Type": "application/octet-stream"})
            status, start = 200, 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    return self.reply(416, {"Content-Range": f"bytes */{len(data)}"}, b"", send_body)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            if send_body and self.path.startswith("/lfs/") and cut["left"] is not None:
                n, cut["left"] = cut["left"], None
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:n])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.reply(status, headers, body, send_body)

    # A parent may have left SIGTERM blocked or ignored: stop on it all the same.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
