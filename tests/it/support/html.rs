//! Reading the pages the way a browser does, with an HTML parser: forms, their fields, links and text.
use scraper::{ElementRef, Html, Selector};

fn select(selector: &str) -> Selector {
    Selector::parse(selector).unwrap_or_else(|e| panic!("selector {selector}: {e}"))
}

fn attributes_of(element: ElementRef<'_>) -> Vec<(String, String)> {
    element.value().attrs().map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
}

pub fn is_consent_page(html: &str) -> bool {
    control_values(html, "decision").iter().any(|value| value == "allow")
}

pub fn is_login_page(html: &str) -> bool {
    has_input(html, "password") && !is_consent_page(html)
}

pub fn extract_hidden(html: &str, name: &str) -> String {
    hidden_value(html, name).unwrap_or_else(|| panic!("no input named {name} in: {html}"))
}

/// The value of the first `<input>` named `name`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let page = Html::parse_document(html);
    let input = page.select(&select("input")).find(|e| e.value().attr("name") == Some(name))?;
    input.value().attr("value").map(str::to_owned)
}

pub fn has_input(html: &str, name: &str) -> bool {
    Html::parse_document(html).select(&select("input")).any(|e| e.value().attr("name") == Some(name))
}

/// The values of the buttons and inputs named `name`.
pub fn control_values(html: &str, name: &str) -> Vec<String> {
    Html::parse_document(html)
        .select(&select("button, input"))
        .filter(|e| e.value().attr("name") == Some(name))
        .filter_map(|e| e.value().attr("value").map(str::to_owned))
        .collect()
}

/// The attributes and inner HTML of the first form whose `action` ends with `action`.
pub fn form_with_action(html: &str, action: &str) -> Option<(Vec<(String, String)>, String)> {
    let page = Html::parse_document(html);
    let form = page.select(&select("form")).find(|f| f.value().attr("action").is_some_and(|a| a.ends_with(action)))?;
    Some((attributes_of(form), form.inner_html()))
}

/// The hidden fields of the form posting to `action`, in order, the first of each name.
pub fn form_hidden_inputs(html: &str, action: &str) -> Vec<(String, String)> {
    let page = Html::parse_document(html);
    let form = page
        .select(&select("form"))
        .find(|f| f.value().attr("action").is_some_and(|a| a.ends_with(action)))
        .unwrap_or_else(|| panic!("no form posting to {action}: {html}"));
    let mut fields: Vec<(String, String)> = Vec::new();
    for input in form.select(&select("input")) {
        let hidden = input.value().attr("type").is_some_and(|kind| kind.eq_ignore_ascii_case("hidden"));
        if hidden
            && let Some(name) = input.value().attr("name")
            && fields.iter().all(|(existing, _)| existing != name)
        {
            fields.push((name.to_owned(), input.value().attr("value").unwrap_or_default().to_owned()));
        }
    }
    fields
}

pub fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// What a person reads on the page: its text, entities decoded, tags gone.
pub fn page_text(html: &str) -> String {
    Html::parse_document(html).root_element().text().collect()
}

/// The text of the element with this id.
pub fn element_text(html: &str, id: &str) -> String {
    let page = Html::parse_document(html);
    let element = page.select(&select(&format!("#{id}"))).next().unwrap_or_else(|| panic!("no #{id}: {html}"));
    element.text().collect()
}

/// Every link's target, decoded.
pub fn links(html: &str) -> Vec<String> {
    Html::parse_document(html)
        .select(&select("a[href]"))
        .filter_map(|a| a.value().attr("href").map(str::to_owned))
        .collect()
}
