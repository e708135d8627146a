//! Real work: renders Markdown (CommonMark plus tables, strikethrough and
//! task lists) to HTML.
use corral_sdk::{Error, log};
use pulldown_cmark::{Options, Parser, html};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    markdown: String,
}

#[derive(Serialize)]
struct Output {
    html: String,
    /// Top-level headings found, in order.
    headings: Vec<String>,
}

fn render(input: Input) -> Result<Output, Error> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut headings = Vec::new();
    let mut in_heading = false;
    let events: Vec<_> = Parser::new_ext(&input.markdown, options)
        .inspect(|event| {
            use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};
            match event {
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H1,
                    ..
                }) => {
                    in_heading = true;
                    headings.push(String::new());
                }
                Event::End(TagEnd::Heading(HeadingLevel::H1)) => in_heading = false,
                Event::Text(text) if in_heading => {
                    if let Some(last) = headings.last_mut() {
                        last.push_str(text);
                    }
                }
                _ => {}
            }
        })
        .collect();
    let mut out = String::with_capacity(input.markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    // An operator setting: wrap the output in a <div> of this class.
    if let Some(class) = corral_sdk::config("wrapper_class") {
        let class: String = class
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        out = format!("<div class=\"{class}\">\n{out}</div>\n");
    }
    log::info(&format!(
        "rendered {} bytes of markdown into {} bytes of html",
        input.markdown.len(),
        out.len()
    ));
    corral_sdk::progress(100, "rendered");
    Ok(Output {
        html: out,
        headings,
    })
}

corral_sdk::register!(render);
