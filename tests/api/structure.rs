//! The layering rules of DESIGN.md, checked on the source text so they stay true (issue 8): imports point
//! down only. Each rule names the files it allows, so a new exception is a visible, reviewed change here.

use std::path::{Path, PathBuf};

struct Source {
    /// Relative to the crate root, with `/` separators: `src/tools/mod.rs`.
    path: String,
    /// The file with comment lines blanked (line numbers kept), up to its `#[cfg(test)]` module: unit tests may
    /// stand up fake peers with axum.
    code: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .map(|l| {
                    if l.trim_start().starts_with("//") {
                        ""
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let path = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            Source { path, code }
        })
        .collect()
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// Every top-level module of this crate a file names (`crate::x::..`, `use crate::{x::.., y}`), with its line.
fn crate_modules(code: &str) -> Vec<(String, usize)> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the braced list at depth 0 and take each element's first name.
            let (mut depth, mut start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push((ident(&group[start..i]), line_of(code, at)));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push((ident(&group[start..i]), line_of(code, at)));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push((ident(rest), line_of(code, at)));
        }
    }
    out.retain(|(m, _)| !m.is_empty());
    out
}

/// Files under `from` (path prefixes) that import any of `modules`, except the files `allowed` lets through.
fn imports(from: &[&str], modules: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    sources()
        .iter()
        .filter(|s| from.iter().any(|p| s.path.starts_with(p)) && !allowed(&s.path))
        .flat_map(|s| {
            crate_modules(&s.code)
                .into_iter()
                .filter(|(m, _)| modules.contains(&m.as_str()))
                .map(|(m, line)| format!("  {}:{line}: crate::{m}", s.path))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn texts(needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources().iter().filter(|s| !allowed(&s.path)) {
        for (i, line) in s.code.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n)) {
                out.push(format!("  {}:{}: {}", s.path, i + 1, line.trim()));
            }
        }
    }
    out
}

fn assert_none(rule: &str, offending: Vec<String>) {
    assert!(offending.is_empty(), "{rule}:\n{}", offending.join("\n"));
}

#[test]
fn the_module_scanner_sees_braced_and_inline_imports() {
    let code =
        "use crate::{\n    agent::llm::X,\n    tools::{a, b},\n};\nfn f() { crate::auth::g(); }";
    let names: Vec<String> = crate_modules(code).into_iter().map(|(m, _)| m).collect();
    assert_eq!(names, ["agent", "tools", "auth"]);
}

#[test]
fn only_the_web_face_knows_http() {
    // The web face, the assembly above it, the CLI, the rmcp gateway adapter (rmcp hands it axum's request
    // parts) and the benchmark-only servers, which are web servers themselves.
    let allowed = |f: &str| {
        f.starts_with("src/http/")
            || f == "src/app.rs"
            || f.starts_with("src/cli")
            || f == "src/mcp/gateway.rs"
            || f.starts_with("src/bench/")
            // The browser pages: they serve embedded files through the route registrar and call no service.
            || f.starts_with("src/web/")
    };
    let mut offending = imports(&["src/"], &["http"], allowed);
    offending.extend(texts(&["axum::"], allowed));
    assert_none(
        "`crate::http` or `axum::` outside src/http, src/app.rs, src/cli*, the gateway adapter and src/bench",
        offending,
    );
}

#[test]
fn the_pages_reach_no_service_from_the_server() {
    // `web` serves files through the route registrar; the browser calls the API for everything else.
    let offending: Vec<String> = sources()
        .iter()
        .filter(|s| s.path.starts_with("src/web/"))
        .flat_map(|s| {
            crate_modules(&s.code)
                .into_iter()
                .filter(|(m, _)| m != "http")
                .map(|(m, line)| format!("  {}:{line}: crate::{m}", s.path))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_none(
        "src/web imports a module other than http (its registrar and error)",
        offending,
    );
}

#[test]
fn the_api_does_not_import_the_pages_above_it() {
    // The assembly (`app`) hands the pages to `http::router`; `http` itself never names `web`.
    assert_none(
        "`crate::web` imported from src/http",
        imports(&["src/http/"], &["web"], |_| false),
    );
}

#[test]
fn handlers_reach_the_database_only_through_services() {
    let offending: Vec<String> = texts(&["state.db", "::store::"], |f| !f.starts_with("src/http/"))
        .into_iter()
        // The one exception: the error mapping asks the store whether an error means "database unavailable"
        // (to answer 503, not 500); that reads no data.
        .filter(|l| !(l.starts_with("  src/http/error.rs:") && l.contains("store::is_unavailable")))
        .collect();
    assert_none(
        "`state.db` or a `::store::` call in src/http (a service owns its SQL)",
        offending,
    );
}

#[test]
fn nothing_below_the_agent_imports_it() {
    let offending = imports(
        &["src/tools/", "src/mcp/", "src/auth/", "src/store/"],
        &["agent"],
        |_| false,
    );
    assert_none(
        "`crate::agent` imported from tools, mcp, auth or store",
        offending,
    );
}

#[test]
fn the_catalog_knows_no_feature_that_feeds_or_uses_it() {
    let offending = imports(
        &["src/tools/"],
        &["agent", "auth", "mfa", "sms", "mcp", "chat", "http", "app"],
        |_| false,
    );
    assert_none(
        "tools imports a feature (it takes a narrow caller instead)",
        offending,
    );
}

#[test]
fn nothing_imports_the_assembly_from_below() {
    let offending = imports(&["src/"], &["app", "cli"], |f| {
        f.starts_with("src/cli") || f == "src/app.rs" || f == "src/main.rs" || f == "src/lib.rs"
    });
    assert_none(
        "`crate::app` or `crate::cli` imported below them (the shared state lives in src/state.rs)",
        offending,
    );
}

#[test]
fn every_route_goes_through_the_registrar() {
    // `http::routes::Routes` records each route as it adds it; the route-table test compares that record with
    // `ROUTES`. A route added to an axum Router directly would escape both. The one service route (`/mcp`,
    // rmcp behind its own layer) is built in http/mcp.rs and recorded with `Routes::service`.
    let offending: Vec<String> = texts(&[".route(", ".route_service(", ".nest("], |f| {
        !(f.starts_with("src/http/") || f.starts_with("src/web/")) || f == "src/http/routes.rs"
    })
    .into_iter()
    .filter(|l| !(l.starts_with("  src/http/mcp.rs:") && l.contains(".route_service(\"/mcp\"")))
    .collect();
    assert_none(
        "a route added outside the registrar (src/http/routes.rs)",
        offending,
    );
}

#[test]
fn middleware_wraps_the_router_once_not_each_route() {
    // `Router::layer` and `route_layer` wrap every route on its own, and a request then clones its route's
    // chain of boxed layers again at each layer (49 boxed clones for a `/mcp` call). The server's layers are one
    // tower stack around the router (`http::router`); the one route layer is `/mcp`'s front, in http/mcp.rs.
    let stack_starts = sources()
        .into_iter()
        .find(|s| s.path == "src/http/mod.rs")
        .and_then(|s| {
            s.code
                .find("ServiceBuilder::new()")
                .map(|at| line_of(&s.code, at))
        })
        .expect("http::router builds its stack with ServiceBuilder");
    let in_the_stack = |l: &str| {
        l.strip_prefix("  src/http/mod.rs:")
            .and_then(|rest| rest.split(':').next()?.parse::<usize>().ok())
            .is_some_and(|line| line > stack_starts && !l.contains(".route_layer("))
    };
    let offending: Vec<String> = texts(&[".layer(", ".route_layer("], |f| {
        !(f.starts_with("src/http/") || f.starts_with("src/web/") || f == "src/app.rs")
    })
    .into_iter()
    .filter(|l| !in_the_stack(l))
    .filter(|l| {
        !(l.starts_with("  src/http/mcp.rs:")
            && l.contains(
                ".route_layer(axum::middleware::from_fn_with_state(front, gateway_front))",
            ))
    })
    .collect();
    assert_none(
        "a layer on the router's routes instead of the stack around it (src/http/mod.rs)",
        offending,
    );
}

#[test]
fn second_factors_sit_above_auth_and_sms_and_below_the_web_face() {
    // `auth` offers the two halves of a login and the `mfa` token; `mfa` composes them with SMS. An import the
    // other way round would make a cycle (and let the hot path depend on a provider).
    let mut offending = imports(&["src/auth/"], &["mfa", "sms"], |_| false);
    // `tools` for step-up approvals: mfa verifies the code and then decides the pending approval.
    let allowed = [
        "mfa", "auth", "sms", "store", "audit", "clock", "ids", "config", "tools",
    ];
    offending.extend(
        sources()
            .iter()
            .filter(|s| s.path.starts_with("src/mfa/"))
            .flat_map(|s| {
                crate_modules(&s.code)
                    .into_iter()
                    .filter(|(m, _)| !allowed.contains(&m.as_str()))
                    .map(|(m, line)| format!("  {}:{line}: crate::{m}", s.path))
                    .collect::<Vec<_>>()
            }),
    );
    assert_none(
        "auth imports mfa or sms, or mfa imports beyond auth, sms, store, audit, clock, ids, config and tools",
        offending,
    );
}

/// The README's "Source layout" names every folder and file under `src/` (a file by its name, within its folder's
/// entry or anywhere in the section), so a newcomer's map of the tree stays the tree.
#[test]
fn the_readme_source_layout_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("## Source layout")
        .expect("README has a Source layout section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut missing = Vec::new();
    for source in sources() {
        let path = Path::new(&source.path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let folder = path.parent().unwrap().to_string_lossy().to_string();
        // A top-level file is named with its folder (`src/app.rs`); a folder by its path (`src/auth/`), once.
        let named = if folder == "src" {
            section.contains(&source.path)
        } else {
            let folder_named = section.contains(&format!("{folder}/"))
                || folder
                    .rsplit('/')
                    .next()
                    .is_some_and(|last| section.contains(&format!("{last}/")));
            folder_named && (name == "mod.rs" || section.contains(&name))
        };
        if !named {
            missing.push(source.path);
        }
    }
    assert!(
        missing.is_empty(),
        "the README's Source layout does not name: {missing:#?}"
    );
}

#[test]
fn the_change_bus_sits_low_and_knows_no_feature() {
    // `cluster` sits beside `store`: auth, tools and mcp publish through it and the assembly subscribes, so it
    // imports none of them (nor anything above).
    let offending = imports(
        &["src/cluster/"],
        &[
            "agent",
            "auth",
            "mfa",
            "sms",
            "mcp",
            "chat",
            "tools",
            "http",
            "app",
            "state",
            "web",
            "analytics",
            "connections",
            "saved_tests",
            "audit",
        ],
        |_| false,
    );
    assert_none(
        "src/cluster imports a service or the web face (it sits beside store)",
        offending,
    );
}
