//! Chart scene with two outputs: SVG for the browser and PNG for places that
//! cannot show SVG (e-mail, PDF embedding, downloads).
//!
//! Callers lay out the chart once as rectangles, lines and text in user
//! units; this module writes that list as SVG, and the PNG is that same SVG
//! rendered by the maintained `resvg` crate, so the two cannot drift apart.
//! The SVG writer stays our own: it is a few lines of string formatting for
//! three element kinds, simpler than building a tree for an SVG library.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use super::{BOLD_TTF, REGULAR_TTF};

/// Guards against requests that would allocate gigabytes: 8192 x 8192 is
/// far beyond any chart the service shows.
const MAX_SIDE: u32 = 8192;

/// sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

/// Horizontal alignment of text relative to its x coordinate, as SVG's
/// `text-anchor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One drawing primitive in user units (SVG pixels); `Text.y` is the
/// baseline, as in SVG.
#[derive(Clone, Debug, PartialEq)]
pub enum Element {
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Color,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        stroke: Color,
        width: f32,
    },
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
        anchor: Anchor,
        bold: bool,
        fill: Color,
    },
}

/// A complete scene; elements are painted in order, later on top.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub width: f32,
    pub height: f32,
    pub title: String,
    pub elements: Vec<Element>,
}

impl Chart {
    /// Standalone SVG 1.1. The title doubles as the accessible name so
    /// screen readers announce the chart.
    pub fn to_svg(&self) -> String {
        let mut s = String::with_capacity(256 + self.elements.len() * 96);
        let w = num(self.width.max(0.0));
        let h = num(self.height.max(0.0));
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"chart-title\" font-family=\"DejaVu Sans, sans-serif\">\n"
        ));
        s.push_str(&format!(
            "<title id=\"chart-title\">{}</title>\n",
            escape(&self.title)
        ));
        // Explicit background so the SVG looks like the PNG on dark pages.
        s.push_str(&format!(
            "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n"
        ));
        for e in &self.elements {
            match e {
                Element::Rect { x, y, w, h, fill } => {
                    let (x, y, w, h) = normalise_rect(*x, *y, *w, *h);
                    s.push_str(&format!(
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                        num(x),
                        num(y),
                        num(w),
                        num(h),
                        hex(*fill)
                    ));
                }
                Element::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    stroke,
                    width,
                } => {
                    s.push_str(&format!(
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
                        num(*x1),
                        num(*y1),
                        num(*x2),
                        num(*y2),
                        hex(*stroke),
                        num(width.max(0.0))
                    ));
                }
                Element::Text {
                    x,
                    y,
                    size,
                    text,
                    anchor,
                    bold,
                    fill,
                } => {
                    let anchor = match anchor {
                        Anchor::Start => "start",
                        Anchor::Middle => "middle",
                        Anchor::End => "end",
                    };
                    let weight = if *bold { " font-weight=\"bold\"" } else { "" };
                    s.push_str(&format!(
                        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{anchor}\"{weight} fill=\"{}\">{}</text>\n",
                        num(*x),
                        num(*y),
                        num(size.max(0.0)),
                        hex(*fill),
                        escape(text)
                    ));
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }

    /// PNG at `scale` device pixels per user unit (2.0 for high-DPI): the SVG above,
    /// rendered by resvg, so the two outputs cannot differ.
    pub fn to_png(&self, scale: f32) -> Result<Vec<u8>, String> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(format!("invalid scale {scale}"));
        }
        let side = |v: f32, what: &str| -> Result<u32, String> {
            let px = (v * scale).round();
            if !(px.is_finite() && px >= 1.0 && px <= MAX_SIDE as f32) {
                return Err(format!("chart {what} {v} x {scale} is out of range"));
            }
            Ok(px as u32)
        };
        let pw = side(self.width, "width")?;
        let ph = side(self.height, "height")?;
        let tree = usvg::Tree::from_str(&self.to_svg(), svg_options())
            .map_err(|e| format!("chart SVG does not parse: {e}"))?;
        let mut pixmap =
            tiny_skia::Pixmap::new(pw, ph).ok_or_else(|| format!("no {pw}x{ph} pixmap"))?;
        // The SVG's own size may differ from the rounded pixel size by a fraction of a
        // pixel; scale each axis so the picture fills the pixmap exactly.
        let size = tree.size();
        let transform =
            tiny_skia::Transform::from_scale(pw as f32 / size.width(), ph as f32 / size.height());
        resvg::render(&tree, transform, &mut pixmap.as_mut());
        pixmap
            .encode_png()
            .map_err(|e| format!("PNG encoding: {e}"))
    }
}

/// Parser options shared by every PNG: only the embedded DejaVu faces, never the host's
/// fonts, so a chart rasterises to the same pixels on every machine.
fn svg_options() -> &'static usvg::Options<'static> {
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        for data in [REGULAR_TTF, BOLD_TTF] {
            db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(data)));
        }
        db.set_sans_serif_family("DejaVu Sans");
        usvg::Options {
            font_family: "DejaVu Sans".into(),
            languages: vec!["sv".into()],
            fontdb: Arc::new(db),
            ..usvg::Options::default()
        }
    })
}

/// SVG forbids negative sizes, so flip them into the same area instead of
/// silently dropping the shape.
fn normalise_rect(x: f32, y: f32, w: f32, h: f32) -> (f32, f32, f32, f32) {
    let (x, w) = if w < 0.0 { (x + w, -w) } else { (x, w) };
    let (y, h) = if h < 0.0 { (y + h, -h) } else { (y, h) };
    (x, y, w, h)
}

/// At most two decimals and no trailing zeros, keeping SVGs small and
/// diff-friendly; non-finite values become 0 so the SVG stays parseable.
fn num(v: f32) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let r = (f64::from(v) * 100.0).round() / 100.0;
    let s = format!("{r:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn hex(c: Color) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Escapes the XML specials and drops control characters, which XML 1.0
/// forbids even when escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
