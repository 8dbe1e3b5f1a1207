"""A Flask app served through a wsgi: route to programs outside Python."""
from flask import Flask, request

app = Flask(__name__)


@app.route("/hello/<name>", methods=["GET", "POST"])
def hello(name):
    return {"hello": name, "method": request.method, "body": request.get_data(as_text=True),
            "script_root": request.script_root, "scheme": request.scheme}
