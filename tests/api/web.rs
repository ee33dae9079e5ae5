//! The browser pages (`src/web/`): served from the binary with the right types, under the strict CSP with nothing
//! inline, accessible markup, no other host, no script that turns text into markup, small, and calling only
//! routes that exist. The checks read the embedded files themselves, so a later change cannot slip past them.

use crate::helpers::prelude::*;
use warden::web::{
    ADMIN_ONLY_ASSETS, ADMIN_PAGE, ASSETS, CHAT_PAGE, LOGIN_PAGE, SETTINGS_PAGE, VENDORED_ASSETS,
};

db_tests!(
    the_pages_and_assets_answer_with_their_content_types,
    the_root_redirects_to_the_chat_page_and_an_unknown_asset_is_404,
    the_pages_are_served_under_a_csp_without_unsafe_inline_or_eval,
    the_chat_page_and_its_assets_stay_under_150_kb,
);

const PAGES: &[(&str, &str)] = &[
    ("/login", LOGIN_PAGE),
    ("/chat", CHAT_PAGE),
    ("/admin", ADMIN_PAGE),
    ("/settings", SETTINGS_PAGE),
];

/// SHA-256 of each vendored file as its npm release ships it (`npm pack uplot@1.6.31`, `package/dist/`).
const VENDORED_SHA256: &[(&str, &str)] = &[
    (
        "uplot.iife.min.js",
        "2d27e8ad3d228164525ce213f9dc716f39b4e3aee0cc773fb3491c96cf4921a2",
    ),
    (
        "uplot.min.css",
        "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    ),
];

fn vendored(name: &str) -> bool {
    VENDORED_ASSETS.contains(&name)
}

fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS
        .iter()
        .filter(|(name, _, _)| name.ends_with(".js"))
        .map(|(name, _, body)| (*name, *body))
}

/// Every file the browser receives: the pages and the assets, by name.
fn all_files() -> Vec<(&'static str, &'static str)> {
    PAGES
        .iter()
        .copied()
        .chain(ASSETS.iter().map(|(name, _, body)| (*name, *body)))
        .collect()
}

/// The HTML without its comments (the header comment documents ids in words, not markup).
fn without_comments(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    out.push_str(rest);
    out
}

/// Every tag of the page as its lower-cased text between `<` and `>`.
fn tags(html: &str) -> Vec<String> {
    let html = without_comments(html);
    let mut out = Vec::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a closed tag") + start;
        out.push(rest[start + 1..end].to_lowercase());
        rest = &rest[end + 1..];
    }
    out
}

/// The value of `name="..."` in a tag, if any.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// An ` onclick=`-like attribute in a tag: a space, `on`, letters, `=`.
fn has_event_handler(tag: &str) -> bool {
    tag.match_indices(" on").any(|(at, _)| {
        let letters: String = tag[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        !letters.is_empty() && tag[at + 3 + letters.len()..].starts_with('=')
    })
}

async fn the_pages_and_assets_answer_with_their_content_types(kind: DbKind) {
    let app = spawn_app(kind).await;
    for (path, body) in PAGES {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert_eq!(r.text().await.unwrap(), *body, "{path}");
    }
    for (name, content_type, body) in ASSETS {
        let r = app
            .client
            .get(app.url(&format!("/static/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(r.headers()["content-type"], *content_type, "{name}");
        let expected = if name.ends_with(".css") {
            "text/css"
        } else if name.ends_with(".svg") {
            "image/svg+xml"
        } else {
            "text/javascript"
        };
        assert!(content_type.starts_with(expected), "{name}: {content_type}");
        let cache = r.headers()["cache-control"].to_str().unwrap().to_string();
        assert!(cache.starts_with("public, max-age="), "{name}: {cache}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.text().await.unwrap(), *body, "{name}");
    }
    // Every asset a page links is one the server has, and every page names the icon (no failed icon request).
    for (path, html) in PAGES {
        assert!(
            html.contains(r#"<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">"#),
            "{path} links the favicon"
        );
        for tag in tags(html) {
            let link = attribute(&tag, "src").or_else(|| attribute(&tag, "href"));
            if let Some(link) = link.filter(|l| l.starts_with("/static/")) {
                let name = &link["/static/".len()..];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{path} links {link}"
                );
            }
        }
    }
}

async fn the_root_redirects_to_the_chat_page_and_an_unknown_asset_is_404(kind: DbKind) {
    let app = spawn_app(kind).await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/chat");
    for path in [
        "/static/nope.js",
        "/static/mod.rs",
        "/static/..%2Fmod.rs",
        "/static/",
        "/static/app.css/x",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            !r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"),
            "{path}"
        );
    }
}

async fn the_pages_are_served_under_a_csp_without_unsafe_inline_or_eval(kind: DbKind) {
    let app = spawn_app(kind).await;
    for path in ["/login", "/chat", "/admin", "/settings", "/static/chat.js"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
    }
}

async fn the_chat_page_and_its_assets_stay_under_150_kb(kind: DbKind) {
    let app = spawn_app(kind).await;
    let mut total = 0;
    // The page and every asset but the admin page's own (the sign-in script too: an overcount keeps the check
    // simple and strict). The chat page links none of the admin page's assets (checked below).
    let paths = std::iter::once("/chat".to_string()).chain(
        ASSETS
            .iter()
            .filter(|(name, _, _)| !ADMIN_ONLY_ASSETS.contains(name))
            .map(|(name, _, _)| format!("/static/{name}")),
    );
    for path in paths {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        total += r.bytes().await.unwrap().len();
    }
    assert!(total < 150 * 1024, "{total} bytes");
}

#[test]
fn no_page_has_inline_script_style_or_event_handlers() {
    for (path, html) in PAGES {
        let html = without_comments(html);
        let lower = html.to_lowercase();
        let mut rest = lower.as_str();
        while let Some(at) = rest.find("<script") {
            let tag_end = rest[at..].find('>').unwrap() + at;
            assert!(
                rest[at..tag_end].contains(" src=\"/static/"),
                "{path}: a script without src"
            );
            assert!(
                rest[tag_end + 1..].starts_with("</script>"),
                "{path}: an inline script"
            );
            rest = &rest[tag_end..];
        }
        assert!(!lower.contains("<style"), "{path}: a <style> element");
        for tag in tags(&html) {
            assert!(!tag.contains(" style="), "{path}: <{tag}>");
            assert!(!has_event_handler(&tag), "{path}: <{tag}>");
            assert!(!tag.contains("javascript:"), "{path}: <{tag}>");
        }
    }
    assert!(has_event_handler("img src=x onerror=\"y\""));
    assert!(!has_event_handler("input id=\"one\" type=\"text\""));
}

#[test]
fn every_page_has_a_language_landmarks_and_labelled_inputs() {
    for (path, html) in PAGES {
        let tags = tags(html);
        let html_tag = tags
            .iter()
            .find(|t| t.starts_with("html"))
            .expect("an <html> tag");
        assert!(
            attribute(html_tag, "lang").is_some_and(|l| !l.is_empty()),
            "{path}"
        );
        assert!(
            tags.iter().any(|t| t == "main" || t.starts_with("main ")),
            "{path}: no <main>"
        );
        assert!(
            tags.iter().any(|t| t.starts_with("header")),
            "{path}: no <header>"
        );
        assert!(
            tags.iter().any(|t| t.starts_with("title")),
            "{path}: no <title>"
        );
        assert!(
            tags.iter().any(|t| attribute(t, "role") == Some("alert")),
            "{path}: no role=alert region for errors"
        );
        let mut ids = Vec::new();
        for tag in &tags {
            if let Some(id) = attribute(tag, "id") {
                assert!(!ids.contains(&id), "{path}: id {id} twice");
                ids.push(id);
            }
            let field = ["input ", "textarea ", "select "]
                .iter()
                .any(|p| tag.starts_with(p));
            if field && attribute(tag, "type") != Some("hidden") {
                let labelled = attribute(tag, "aria-label").is_some()
                    || attribute(tag, "id").is_some_and(|id| {
                        html.to_lowercase()
                            .contains(&format!("<label for=\"{id}\""))
                    });
                assert!(labelled, "{path}: <{tag}> has no label");
            }
            if tag.starts_with("button ") || tag == "button" {
                assert!(
                    attribute(tag, "type").is_some(),
                    "{path}: <{tag}> without a type"
                );
            }
        }
    }
    assert!(
        CHAT_PAGE.contains("href=\"/settings\""),
        "the chat page links the settings page"
    );
    assert!(
        SETTINGS_PAGE.matches("<h2").count() >= 4 && SETTINGS_PAGE.matches("<section").count() >= 4,
        "the settings page has a headed section per topic"
    );
    assert!(
        CHAT_PAGE.contains("<nav"),
        "the chat page lists conversations in a <nav>"
    );
    assert!(
        CHAT_PAGE.contains("aria-live=\"polite\""),
        "streamed answers are announced"
    );
}

/// The vendored files are the npm release byte for byte, their licence is kept beside them, and no page but
/// /admin (nor any script the chat and sign-in pages load) names them or the admin script.
#[test]
fn vendored_files_are_the_release_with_their_licence_and_only_the_admin_page_loads_them() {
    use sha2::{Digest, Sha256};
    for (name, sha) in VENDORED_SHA256 {
        let body = ASSETS.iter().find(|(n, _, _)| n == name).unwrap().2;
        assert_eq!(hex::encode(Sha256::digest(body.as_bytes())), *sha, "{name}");
    }
    assert_eq!(VENDORED_SHA256.len(), VENDORED_ASSETS.len());
    let licence = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/web/assets/vendor/uPlot.LICENSE"
    ))
    .unwrap();
    assert!(licence.contains("The MIT License") && licence.contains("Leon Sorokin"));
    for (name, text) in all_files() {
        if name == "/admin" || ADMIN_ONLY_ASSETS.contains(&name) {
            continue;
        }
        for admin_only in ADMIN_ONLY_ASSETS {
            assert!(!text.contains(admin_only), "{name} loads {admin_only}");
        }
    }
    assert!(ADMIN_PAGE.contains("src=\"/static/uplot.iife.min.js\""));
}

/// The vendored minified files are left out of the host checks below: uPlot's licence banner names its home
/// (`/*! https://github.com/leeoniya/uPlot (v1.6.31) */`). Here that banner is the only URL-like text in them.
#[test]
fn vendored_files_reference_no_host_but_their_banner() {
    for name in VENDORED_ASSETS {
        let text = ASSETS.iter().find(|(n, _, _)| n == name).unwrap().2;
        let rest = text
            .strip_prefix("/*! https://github.com/leeoniya/uPlot (v1.6.31) */")
            .unwrap_or(text);
        for needle in ["http:", "https:", "//", "url(", "@import"] {
            assert!(!rest.contains(needle), "{name} contains {needle}");
        }
    }
}

#[test]
fn no_file_references_another_host() {
    for (name, text) in all_files().into_iter().filter(|(n, _)| !vendored(n)) {
        // An SVG's namespace is a name, never fetched.
        let text = &text.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
        for needle in ["http://", "https://", "url("] {
            assert!(!text.contains(needle), "{name} contains {needle}");
        }
        // A scheme-relative `//host`: two slashes right before a host name (a `// comment` has a space).
        for (at, _) in text.match_indices("//") {
            let next = text[at + 2..].chars().next().unwrap_or(' ');
            assert!(
                !(next.is_ascii_alphanumeric() || next == '[') || text[..at].ends_with(':'),
                "{name}: {}",
                &text[at.saturating_sub(20)..(at + 30).min(text.len())]
            );
        }
        for needle in ["@import", "fonts.googleapis", "cdn"] {
            assert!(
                !text.to_lowercase().contains(needle),
                "{name} contains {needle}"
            );
        }
    }
}

#[test]
fn no_script_turns_text_into_markup_or_code() {
    for (name, js) in scripts() {
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "Function(",
            "setTimeout('",
            "setTimeout(\"",
            "createContextualFragment",
            "DOMParser",
            ".setAttribute('on",
            ".setAttribute('style",
            ".setAttribute('href",
        ] {
            assert!(!js.contains(needle), "{name} uses {needle}");
        }
    }
    // Links from model text are checked for http(s) and opened without a referrer or opener.
    let markdown = ASSETS
        .iter()
        .find(|(n, _, _)| *n == "markdown.js")
        .unwrap()
        .2;
    assert!(markdown.contains("url.protocol === 'http:' || url.protocol === 'https:'"));
    assert!(markdown.contains("rel = 'noopener noreferrer'"));
}

/// The paths the scripts call, read from their string literals (`'/auth/login'`, `` `/chat/session/${id}` ``),
/// with `${..}` standing for one path segment.
fn called_paths(js: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['\'', '`'] {
        let opening = format!("{quote}/");
        for (at, _) in js.match_indices(&opening) {
            let rest = &js[at + 1..];
            // A quote followed by `/` that opens no one-line literal is not a path (a regular expression).
            let Some(literal) = rest.find(quote).map(|end| &rest[..end]) else {
                continue;
            };
            if literal.contains('\n') {
                continue;
            }
            let path = literal.split('?').next().unwrap();
            let mut normal = String::new();
            let mut rest = path;
            while let Some(start) = rest.find("${") {
                normal.push_str(&rest[..start]);
                normal.push('*');
                rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
            }
            normal.push_str(rest);
            out.push(normal);
        }
    }
    out
}

fn matches_route(path: &str, route: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), route.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(p, r)| p == r || (*p == "*" && r.starts_with('{')))
}

#[test]
fn every_path_the_scripts_call_is_a_route() {
    let mut seen = 0;
    // The vendored library calls no route (and its minified literals are not paths).
    for (name, js) in scripts().filter(|(n, _)| !vendored(n)) {
        for path in called_paths(js) {
            assert!(
                warden::http::system::ROUTES
                    .iter()
                    .any(|(_, route, _, _)| matches_route(&path, route)),
                "{name} calls {path}, which is no route"
            );
            seen += 1;
        }
    }
    // The sign-in, second factor, status, chat and page-view calls are all among them.
    let all: Vec<String> = scripts().flat_map(|(_, js)| called_paths(js)).collect();
    for expected in [
        "/auth/login",
        "/auth/mfa/verify",
        "/auth/mfa/send",
        "/auth/logout",
        "/api/status",
        "/api/analytics/log-page-view",
        "/chat/sessions",
        "/chat/session/new",
        "/chat/session/*",
        "/chat/session/*/history",
        "/chat/message",
        "/chat/approvals/*",
        "/api/users",
        "/api/users/*",
        "/api/me",
        "/api/servers",
        "/api/servers/*/tools",
        "/api/mcp/servers",
        "/api/mcp/servers/*",
        "/api/analytics/key-metrics",
        "/api/analytics/timeseries",
        "/api/analytics/routes",
        "/api/tool-calls",
        "/api/audit",
        "/api/me/mfa",
        "/api/me/mfa/totp",
        "/api/me/mfa/totp/qr.svg",
        "/api/me/mfa/totp/confirm",
        "/api/me/phone",
        "/api/me/phone/verify",
        "/api/me/password",
        "/api/me/sessions",
        "/api/me/sessions/*",
        "/auth/logout-all",
    ] {
        assert!(all.iter().any(|p| p == expected), "{expected} in {all:?}");
    }
    assert!(seen >= 12);
}
