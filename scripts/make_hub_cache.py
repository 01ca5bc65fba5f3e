#!/usr/bin/env python3
"""Fill a Hugging Face cache with huggingface_hub itself, for the tests: a cache that Python made
must serve `bert --model ORG/NAME`. The machines here cannot reach huggingface.co, so the files
come from scripts/fake_hub.py on 127.0.0.1, serving the model folder under the hub's URL paths.

Usage: make_hub_cache.py --model DIR --repo-id ORG/NAME --cache OUT
(OUT is written whole: a temporary sibling, then renamed.)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--repo-id", required=True)
    ap.add_argument("--cache", required=True)
    args = ap.parse_args()
    org, name = args.repo_id.split("/")
    served = tempfile.mkdtemp(prefix="fake-hub-")
    os.makedirs(os.path.join(served, org))
    os.symlink(os.path.abspath(args.model), os.path.join(served, org, name))
    hub = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "fake_hub.py"), "--root", served],
        stdout=subprocess.PIPE, text=True)
    try:
        port = int(hub.stdout.readline().split()[1])
        # huggingface_hub reads its settings when imported.
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ.pop("HF_TOKEN", None)
        import huggingface_hub

        partial = args.cache.rstrip("/") + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        info = huggingface_hub.HfApi().model_info(args.repo_id)
        files = [s.rfilename for s in info.siblings if not s.rfilename.startswith(".")]
        for f in files:
            huggingface_hub.hf_hub_download(args.repo_id, f, cache_dir=partial)
        shutil.rmtree(args.cache, ignore_errors=True)
        os.rename(partial, args.cache)
        print(f"{args.cache}: {len(files)} files of {args.repo_id} from huggingface_hub "
              f"{huggingface_hub.__version__}")
    finally:
        hub.terminate()
        shutil.rmtree(served, ignore_errors=True)


if __name__ == "__main__":
    main()
