"""Admin-configured judge endpoints: used by model graders, key never shown back."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.urls import reverse

from webapp.graders.models import JudgeEndpoint


@pytest.fixture
def fake_openai():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization"), body))
            reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Score: 0.8"}}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()


def test_score_model_uses_the_configured_endpoint_and_key(fake_openai, project_with_roles, api_client_for):
    url, seen = fake_openai
    project, users = project_with_roles
    JudgeEndpoint.objects.create(name="house-judge", base_url=url, api_key="sk-secret-123", model="qwen-7b")
    grader = {"type": "score_model", "name": "judge", "model": "house-judge", "range": [0, 1],
              "input": [{"role": "user", "content": "Rate: {{sample.output_text}}"}]}
    body = api_client_for(users["viewer"], project).post(
        "/v1/fine_tuning/alpha/graders/run", {"grader": grader, "model_sample": "fine", "item": {}},
        content_type="application/json").json()
    assert body["reward"] == pytest.approx(0.8), body
    assert seen[0][0] == "Bearer sk-secret-123" and seen[0][1]["model"] == "qwen-7b"
    assert "sk-secret-123" not in json.dumps(body)


def test_admin_never_shows_the_key_and_keeps_it_when_left_empty(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(admin)
    endpoint = JudgeEndpoint.objects.create(name="j", base_url="http://127.0.0.1:9/v1", api_key="sk-hidden-999")
    url = reverse("admin:graders_judgeendpoint_change", args=[endpoint.pk])
    assert "sk-hidden-999" not in client.get(url).content.decode()
    client.post(url, {"name": "j", "base_url": "http://127.0.0.1:9/v1", "model": "", "api_key": "", "timeout_s": "30"})
    endpoint.refresh_from_db()
    assert endpoint.api_key == "sk-hidden-999" and endpoint.timeout_s == 30
    assert "sk-hidden-999" not in client.get(reverse("admin:graders_judgeendpoint_changelist")).content.decode()
