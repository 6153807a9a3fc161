"""Plays the person in the suite's authorization-code-grant scenario: signs in on our login page, opens the
authorization URL the suite printed, approves on the consent page and delivers the redirect to the suite's
callback server. Standard library only.

    sign_in_and_consent.py ISSUER USERNAME PASSWORD AUTHORIZATION_URL
"""
import http.cookiejar
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Forms(HTMLParser):
    """The hidden inputs of every form, by the form's action."""

    def __init__(self):
        super().__init__()
        self.forms, self.action = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action", "")
            self.forms.setdefault(self.action, [])
        elif tag == "input" and self.action is not None and attrs.get("type") == "hidden":
            self.forms[self.action].append((attrs.get("name", ""), attrs.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self.action = None


def main():
    issuer, username, password, authorization_url = sys.argv[1:5]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def request(url, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with browser.open(urllib.request.Request(url, data=data), timeout=30) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as answer:  # 3xx without following, and errors
            return answer.code, answer.headers, answer.read().decode(errors="replace")

    def hidden(html, action_suffix):
        parser = Forms()
        parser.feed(html)
        for action, inputs in parser.forms.items():
            if action.endswith(action_suffix):
                return inputs
        sys.exit(f"no form posting to {action_suffix} in: {html[:500]}")

    _, _, login_page = request(f"{issuer}/login")
    form = dict(hidden(login_page, "/login"))
    form.update(username=username, password=password, return_to="/")
    status, _, body = request(f"{issuer}/login", form)
    if status != 303:
        sys.exit(f"sign-in failed ({status}): {body[:500]}")

    status, headers, consent_page = request(authorization_url)
    if status != 200:
        sys.exit(f"expected the consent page, got {status} {headers.get('location')}: {consent_page[:500]}")
    form = hidden(consent_page, "/oauth/authorize") + [("decision", "allow")]
    status, headers, body = request(f"{issuer}/oauth/authorize", form)
    callback = headers.get("location")
    if status not in (302, 303) or not callback:
        sys.exit(f"consent did not redirect ({status}): {body[:500]}")
    urllib.request.urlopen(callback, timeout=30).read()  # the suite's callback server
    print("consented; redirect delivered to the suite")


if __name__ == "__main__":
    main()
