//! What the gateway exposes: every connected upstream's tools and prompts under `PREFIX__name`, and its
//! resource templates, each mapped back to (upstream, original name) with the scopes it needs. Built anew
//! whenever an upstream connects, disconnects or changes a list; a name that cannot be exposed (too long,
//! odd characters, or taken by the built-ins or another upstream) is left out and reported, never guessed.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rmcp::model::{Prompt, ResourceTemplate, Tool};

use crate::domain::scope::{MCP_READ, MCP_WRITE};
use crate::domain::upstream::{Access, Upstream, exposed_name};

/// What one upstream offers, as last listed.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub templates: Vec<ResourceTemplate>,
    pub resources: bool,
    pub subscribe: bool,
    pub completions: bool,
}

/// An exposed tool: where it goes and what it needs.
#[derive(Debug, Clone)]
pub struct ToolRoute {
    pub upstream: Arc<str>,
    pub original: String,
    /// `mcp:read`, `mcp:write` unless read-only, and the upstream's own scope.
    pub needs: Arc<[String]>,
    /// The tool as clients see it (renamed).
    pub tool: Tool,
}

/// An exposed prompt.
#[derive(Debug, Clone)]
pub struct PromptRoute {
    pub upstream: Arc<str>,
    pub original: String,
    pub scope: Option<String>,
    pub prompt: Prompt,
}

/// An upstream's resource template.
#[derive(Debug, Clone)]
pub struct TemplateRoute {
    pub upstream: Arc<str>,
    pub scope: Option<String>,
    pub template: ResourceTemplate,
}

/// The merged view of every connected upstream.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Vec<ToolRoute>,
    tool_index: HashMap<String, usize>,
    pub prompts: Vec<PromptRoute>,
    prompt_index: HashMap<String, usize>,
    pub templates: Vec<TemplateRoute>,
    /// Per upstream: the names it offers that clients cannot be shown, and why.
    pub problems: BTreeMap<String, Vec<String>>,
    /// Per upstream: the names clients see.
    pub exposed: BTreeMap<String, Vec<String>>,
}

impl Catalog {
    /// Merges `offers` (in upstream name order) around the names the built-ins already use.
    pub fn build(
        reserved_tools: &HashSet<String>,
        reserved_prompts: &HashSet<String>,
        offers: &[(&Upstream, &Offer)],
    ) -> Catalog {
        let mut catalog = Catalog::default();
        for (upstream, offer) in offers {
            let name: Arc<str> = Arc::from(upstream.name.as_str());
            let mut problems = Vec::new();
            let mut exposed = Vec::new();
            for tool in &offer.tools {
                let Some(shown) = exposed_name(upstream.prefix(), &tool.name) else {
                    problems.push(format!("tool '{}' cannot be named as clients require", tool.name.escape_default()));
                    continue;
                };
                if reserved_tools.contains(&shown) || catalog.tool_index.contains_key(&shown) {
                    problems.push(format!("tool '{shown}' is already taken"));
                    continue;
                }
                let mut renamed = tool.clone();
                renamed.name = shown.clone().into();
                catalog.tool_index.insert(shown.clone(), catalog.tools.len());
                catalog.tools.push(ToolRoute {
                    upstream: name.clone(),
                    original: tool.name.to_string(),
                    needs: tool_needs(upstream, tool),
                    tool: renamed,
                });
                exposed.push(shown);
            }
            for prompt in &offer.prompts {
                let Some(shown) = exposed_name(upstream.prefix(), &prompt.name) else {
                    problems
                        .push(format!("prompt '{}' cannot be named as clients require", prompt.name.escape_default()));
                    continue;
                };
                if reserved_prompts.contains(&shown) || catalog.prompt_index.contains_key(&shown) {
                    problems.push(format!("prompt '{shown}' is already taken"));
                    continue;
                }
                let mut renamed = prompt.clone();
                renamed.name = shown.clone();
                catalog.prompt_index.insert(shown, catalog.prompts.len());
                catalog.prompts.push(PromptRoute {
                    upstream: name.clone(),
                    original: prompt.name.clone(),
                    scope: upstream.scope.clone(),
                    prompt: renamed,
                });
            }
            for template in &offer.templates {
                catalog.templates.push(TemplateRoute {
                    upstream: name.clone(),
                    scope: upstream.scope.clone(),
                    template: template.clone(),
                });
            }
            if !problems.is_empty() {
                catalog.problems.insert(upstream.name.clone(), problems);
            }
            catalog.exposed.insert(upstream.name.clone(), exposed);
        }
        catalog
    }

    pub fn tool(&self, exposed: &str) -> Option<&ToolRoute> {
        self.tool_index.get(exposed).map(|&i| &self.tools[i])
    }

    pub fn prompt(&self, exposed: &str) -> Option<&PromptRoute> {
        self.prompt_index.get(exposed).map(|&i| &self.prompts[i])
    }

    /// The upstreams one of whose templates `uri` matches.
    pub fn template_owners(&self, uri: &str) -> Vec<&TemplateRoute> {
        let mut owners: Vec<&TemplateRoute> =
            self.templates.iter().filter(|t| template_matches(&t.template.uri_template, uri)).collect();
        owners.dedup_by(|a, b| a.upstream == b.upstream);
        owners
    }

    /// The scopes each exposed tool needs, for the guard.
    pub fn tool_needs(&self) -> HashMap<String, Arc<[String]>> {
        self.tools.iter().map(|r| (r.tool.name.to_string(), r.needs.clone())).collect()
    }
}

/// `mcp:read`, plus `mcp:write` unless the operator said read or the tool says it only reads, plus the
/// upstream's scope.
fn tool_needs(upstream: &Upstream, tool: &Tool) -> Arc<[String]> {
    let read_only = match upstream.tools.get(tool.name.as_ref()) {
        Some(Access::Read) => true,
        Some(Access::Write) => false,
        // The list of an upstream reached with people's own credentials was made with one person's: its
        // annotations cannot lower what everyone else's tokens need (the operator may, per tool).
        None if upstream.is_personal() => false,
        None => tool.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false),
    };
    let mut needs = vec![MCP_READ.to_owned()];
    if !read_only {
        needs.push(MCP_WRITE.to_owned());
    }
    needs.extend(upstream.scope.clone());
    needs.into()
}

/// Whether `uri` is one of the URIs an RFC 6570 template describes: its literal text in order, each
/// expression standing for some text (`{var}` without '/', `{+var}`, `{#var}` and other operators any).
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        parts.push((false, &rest[..start]));
        let Some(end) = rest[start..].find('}') else {
            return false;
        };
        parts.push((true, &rest[start + 1..start + end]));
        rest = &rest[start + end + 1..];
    }
    parts.push((false, rest));
    matches_from(&parts, uri)
}

fn matches_from(parts: &[(bool, &str)], uri: &str) -> bool {
    let Some(((is_expression, text), rest)) = parts.split_first() else {
        return uri.is_empty();
    };
    if !is_expression {
        return uri.strip_prefix(text).is_some_and(|after| matches_from(rest, after));
    }
    // A simple `{var}` does not cross '/' (it is percent-encoded there); operators may.
    let simple = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    (0..=uri.len())
        .filter(|&i| uri.is_char_boundary(i))
        .take_while(|&i| !simple || !uri[..i].contains('/'))
        .any(|i| matches_from(rest, &uri[i..]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::upstream::Transport;

    fn upstream(name: &str, prefix: Option<&str>, scope: Option<&str>) -> Upstream {
        Upstream {
            name: name.into(),
            transport: Transport::Http { url: "http://127.0.0.1:1/mcp".into(), headers: BTreeMap::new() },
            prefix: prefix.map(str::to_owned),
            scope: scope.map(str::to_owned),
            timeout_secs: 60,
            enabled: true,
            tools: BTreeMap::new(),
            oauth: None,
            env_per_user: vec![],
        }
    }

    fn tool(name: &str, read_only: bool) -> Tool {
        let mut tool = Tool::new(name.to_owned(), "t", Arc::new(serde_json::Map::new()));
        tool.annotations = Some(rmcp::model::ToolAnnotations::new().read_only(read_only));
        tool
    }

    #[test]
    fn names_are_prefixed_collisions_and_bad_names_are_reported_not_guessed() {
        let fs = upstream("fs", None, Some("files"));
        let mut bare = upstream("bare", Some(""), None);
        bare.tools.insert("write".into(), Access::Read);
        let fs_offer = Offer {
            tools: vec![tool("read", true), tool("write", false), tool("bad name", true)],
            ..Default::default()
        };
        let bare_offer = Offer {
            tools: vec![tool("whoami", true), tool("fs__read", true), tool("write", false)],
            ..Default::default()
        };
        let reserved: HashSet<String> = ["whoami".to_owned()].into();
        let catalog = Catalog::build(&reserved, &HashSet::new(), &[(&bare, &bare_offer), (&fs, &fs_offer)]);
        let read = catalog.tool("fs__read");
        assert!(read.is_none() || read.unwrap().upstream.as_ref() == "bare", "the first to claim a name keeps it");
        assert!(catalog.tool("whoami").is_none(), "a built-in name is never shadowed");
        let write = catalog.tool("fs__write").unwrap();
        assert_eq!((write.upstream.as_ref(), write.original.as_str()), ("fs", "write"));
        assert_eq!(&*write.needs, ["mcp:read", "mcp:write", "files"]);
        assert_eq!(&*catalog.tool("write").unwrap().needs, ["mcp:read"], "the operator's override wins");
        assert!(catalog.problems["fs"].iter().any(|p| p.contains("bad name")));
        assert!(catalog.problems["fs"].iter().any(|p| p.contains("fs__read")));
        assert!(catalog.problems["bare"].iter().any(|p| p.contains("whoami")));
    }

    #[test]
    fn templates_match_their_uris() {
        assert!(template_matches("test://template/{id}/data", "test://template/42/data"));
        assert!(!template_matches("test://template/{id}/data", "test://template/4/2/data"));
        assert!(template_matches("file:///{+path}", "file:///srv/a/b.txt"));
        assert!(!template_matches("note://{id}", "file:///x"));
        assert!(template_matches("x://{a}{?q}", "x://abc?q=1"));
    }
}
