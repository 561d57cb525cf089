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
