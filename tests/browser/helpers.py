"""Steps several browser tests share."""

from playwright.sync_api import expect


def mark_grader_wrong(sample, *, criterion: str, comment: str, label: str | None = None) -> None:
    """On a sample card: “Grader was wrong” about `criterion` (its key; `label`: the name the
    card shows, if not the key), with a comment; waits until recorded."""
    sample.locator("text=Grader was wrong").click()
    sample.locator("select[name=criterion]").select_option(criterion)
    sample.locator("textarea[name=comment]").fill(comment)
    sample.locator("button:has-text('Record disagreement')").click()
    expect(sample.locator(".feedback")).to_contain_text("Recorded")
    expect(sample.locator(".feedback")).to_contain_text(f"grader was wrong: {label or criterion}")


EXPERT, EXPERT_PASSWORD = "expert", "pw-expert"  # the user most browser tests' worlds create


def login(page, live_server, username: str = EXPERT, password: str = EXPERT_PASSWORD) -> None:
    """Log in through the login page; waits for the projects list."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Projects")
