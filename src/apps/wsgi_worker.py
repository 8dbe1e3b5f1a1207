
# ---- the worker for wsgi: routes (appended to intercept_wsgi/wsgi.py) ----
#
# Serves one WSGI app to the dispatcher over stdin/stdout, one request at a
# time, in frames: a 4-byte big-endian length and that many bytes.
#   request:  JSON head, body chunks, an empty frame
#   response: JSON head ({"status", "headers"} or {"error"}), body chunks,
#             an empty frame (or a frame of length 0xFFFFFFFF: the app
#             failed after its head was sent)
import importlib, json, os, struct, sys, tempfile, traceback

def _read_exact(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data

def _read_frame(stream):
    (n,) = struct.unpack(">I", _read_exact(stream, 4))
    return _read_exact(stream, n) if n else b""

def _frame(out, data):
    out.write(struct.pack(">I", len(data)))
    out.write(data)

def main(module_name, callable_name, directory):
    sys.path.insert(0, directory)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the app's prints go to stderr, never into the frames
    sys.stdout = sys.stderr
    app = getattr(importlib.import_module(module_name), callable_name)
    while True:
        try:
            head = json.loads(_read_frame(inp))
        except EOFError:
            return
        body = tempfile.SpooledTemporaryFile(max_size=1 << 20)
        while True:
            chunk = _read_frame(inp)
            if not chunk:
                break
            body.write(chunk)
        body.seek(0)
        environ = environ_for(head["method"], head["scheme"], head["host"], head["port"], head["target"],
                              head["script_name"], head["query"], head["headers"], body, multiprocess=True)
        sent = []

        def send_head(status, headers):
            sent.append(1)
            _frame(out, json.dumps({"status": status, "headers": [list(h) for h in headers]}).encode())

        def send_body(data):
            _frame(out, bytes(data))
            out.flush()

        try:
            run_wsgi(app, environ, send_head, send_body)
            _frame(out, b"")
        except Exception:
            text = traceback.format_exc()
            sys.stderr.write(text)
            if sent:
                out.write(struct.pack(">I", 0xFFFFFFFF))
            else:
                _frame(out, json.dumps({"error": text}).encode())
                _frame(out, b"")
        out.flush()
        body.close()

if __name__ == "__main__":
    main(*sys.argv[1:4])
