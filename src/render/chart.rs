//! Chart scene with two renderers: SVG for the browser and PNG for places
//! that cannot show SVG (e-mail, PDF embedding, downloads).
//!
//! Callers lay out the chart once as rectangles, lines and text in user
//! units; both outputs are produced from that same list, so they cannot
//! drift apart. The PNG rasteriser is deliberately small: axis-aligned
//! rectangles, straight lines and text are all a bar or line chart needs.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

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

    /// PNG at `scale` device pixels per user unit (2.0 for high-DPI).
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
        let mut canvas = Canvas::new(pw, ph);
        let fonts = fonts().ok_or("embedded font could not be parsed")?;
        for e in &self.elements {
            match e {
                Element::Rect { x, y, w, h, fill } => {
                    let (x, y, w, h) = normalise_rect(*x, *y, *w, *h);
                    canvas.fill_rect(x * scale, y * scale, w * scale, h * scale, *fill);
                }
                Element::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    stroke,
                    width,
                } => canvas.line(
                    (x1 * scale, y1 * scale),
                    (x2 * scale, y2 * scale),
                    width * scale,
                    *stroke,
                ),
                Element::Text {
                    x,
                    y,
                    size,
                    text,
                    anchor,
                    bold,
                    fill,
                } => {
                    let font = if *bold { &fonts.1 } else { &fonts.0 };
                    canvas.text(
                        font,
                        x * scale,
                        y * scale,
                        size * scale,
                        text,
                        *anchor,
                        *fill,
                    );
                }
            }
        }
        canvas.encode()
    }
}

fn fonts() -> Option<&'static (FontRef<'static>, FontRef<'static>)> {
    static FONTS: OnceLock<Option<(FontRef<'static>, FontRef<'static>)>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let regular = FontRef::try_from_slice(REGULAR_TTF).ok()?;
            let bold = FontRef::try_from_slice(BOLD_TTF).ok()?;
            Some((regular, bold))
        })
        .as_ref()
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

/// RGB pixel buffer with coverage-based blending.
struct Canvas {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![255; w as usize * h as usize * 3],
        }
    }

    fn blend(&mut self, x: i64, y: i64, c: Color, alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.w) || y >= i64::from(self.h) {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        if a <= 0.0 {
            return;
        }
        let i = (y as usize * self.w as usize + x as usize) * 3;
        if let Some(p) = self.px.get_mut(i..i + 3) {
            for (dst, src) in p.iter_mut().zip([c.0, c.1, c.2]) {
                let v = f32::from(*dst) * (1.0 - a) + f32::from(src) * a;
                *dst = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Clamped pixel range covering `[a, b)` on an axis of length `len`.
    fn span(a: f32, b: f32, len: u32) -> (i64, i64) {
        let lo = a.floor().max(0.0) as i64;
        let hi = (b.ceil() as i64).min(i64::from(len));
        (lo, hi)
    }

    /// Edge pixels get partial coverage so bars line up crisply with
    /// anti-aliased lines at fractional scales.
    fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, c: Color) {
        if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite()) {
            return;
        }
        let (x0, x1) = Self::span(x, x + w, self.w);
        let (y0, y1) = Self::span(y, y + h, self.h);
        for py in y0..y1 {
            let cy = overlap(py as f32, y, y + h);
            if cy <= 0.0 {
                continue;
            }
            for px in x0..x1 {
                let cx = overlap(px as f32, x, x + w);
                self.blend(px, py, c, cx * cy);
            }
        }
    }

    /// Line with butt caps (as SVG's default), anti-aliased by the distance
    /// of each pixel centre from the stroke's edges.
    fn line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, c: Color) {
        let finite = [a.0, a.1, b.0, b.1, width].iter().all(|v| v.is_finite());
        if !finite || width <= 0.0 {
            return;
        }
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-6 {
            return;
        }
        let (ux, uy) = (dx / len, dy / len);
        let half = width / 2.0;
        // Thin strokes are drawn at 1 px with reduced alpha so that hairlines
        // stay visible instead of vanishing between pixel centres.
        let (half_eff, alpha) = if width < 1.0 {
            (0.5, width)
        } else {
            (half, 1.0)
        };
        let pad = half_eff + 1.0;
        let (bx0, bx1) = Self::span(a.0.min(b.0) - pad, a.0.max(b.0) + pad, self.w);
        let (by0, by1) = Self::span(a.1.min(b.1) - pad, a.1.max(b.1) + pad, self.h);
        for py in by0..by1 {
            let cy = py as f32 + 0.5 - a.1;
            for px in bx0..bx1 {
                let cx = px as f32 + 0.5 - a.0;
                let along = cx * ux + cy * uy;
                let across = (cx * -uy + cy * ux).abs();
                let cov_across = (half_eff + 0.5 - across).clamp(0.0, 1.0);
                if cov_across <= 0.0 {
                    continue;
                }
                let cov_along = (along.min(len - along) + 0.5).clamp(0.0, 1.0);
                self.blend(px, py, c, cov_across * cov_along * alpha);
            }
        }
    }

    /// Text on a baseline with kerning; glyph coverage from ab_glyph is used
    /// directly as alpha.
    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        font: &FontRef<'static>,
        x: f32,
        baseline: f32,
        size: f32,
        text: &str,
        anchor: Anchor,
        c: Color,
    ) {
        if !(x.is_finite() && baseline.is_finite() && size.is_finite()) || size <= 0.0 {
            return;
        }
        // ab_glyph scales by ascent-descent height, SVG by the em; convert
        // so that both renderings agree on glyph size.
        let upem = font.units_per_em().unwrap_or(1000.0);
        let px_scale = PxScale::from(size * font.height_unscaled() / upem);
        let sf = font.as_scaled(px_scale);
        let mut glyphs = Vec::with_capacity(text.len());
        let mut pen = 0.0f32;
        let mut prev = None;
        for ch in text.chars().filter(|ch| !ch.is_control()) {
            let id = sf.glyph_id(ch);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            glyphs.push((id, pen));
            pen += sf.h_advance(id);
            prev = Some(id);
        }
        let start = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - pen / 2.0,
            Anchor::End => x - pen,
        };
        for (id, offset) in glyphs {
            let glyph =
                id.with_scale_and_position(px_scale, ab_glyph::point(start + offset, baseline));
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                let (ox, oy) = (bounds.min.x as i64, bounds.min.y as i64);
                outlined.draw(|gx, gy, cov| {
                    self.blend(ox + i64::from(gx), oy + i64::from(gy), c, cov);
                });
            }
        }
    }

    fn encode(self) -> Result<Vec<u8>, String> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        // Fast deflate: charts are flat colour areas that compress well even
        // at low effort, and encode time dominates rendering otherwise.
        let enc = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        );
        enc.write_image(&self.px, self.w, self.h, image::ExtendedColorType::Rgb8)
            .map_err(|e| format!("PNG encoding failed: {e}"))?;
        Ok(out)
    }
}

/// Fraction of the pixel `[p, p+1)` covered by `[a, b)`.
fn overlap(p: f32, a: f32, b: f32) -> f32 {
    (b.min(p + 1.0) - a.max(p)).clamp(0.0, 1.0)
}
