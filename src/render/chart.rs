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

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_chart() -> Chart {
        let mut elements = vec![
            Element::Line {
                x1: 60.0,
                y1: 540.0,
                x2: 860.0,
                y2: 540.0,
                stroke: Color(0, 0, 0),
                width: 1.0,
            },
            Element::Line {
                x1: 60.0,
                y1: 40.0,
                x2: 60.0,
                y2: 540.0,
                stroke: Color(0, 0, 0),
                width: 1.0,
            },
        ];
        for i in 0..18u8 {
            let h = 40.0 + f32::from(i) * 25.0;
            let x = 70.0 + f32::from(i) * 44.0;
            elements.push(Element::Rect {
                x,
                y: 540.0 - h,
                w: 34.0,
                h,
                fill: Color(30, 90 + i * 5, 160),
            });
            elements.push(Element::Text {
                x: x + 17.0,
                y: 558.0,
                size: 11.0,
                text: format!("BT{}", i + 1),
                anchor: Anchor::Middle,
                bold: false,
                fill: Color(40, 40, 40),
            });
        }
        for k in 0..5 {
            let y = 540.0 - k as f32 * 100.0;
            elements.push(Element::Line {
                x1: 60.0,
                y1: y,
                x2: 860.0,
                y2: y,
                stroke: Color(220, 220, 220),
                width: 0.5,
            });
            elements.push(Element::Text {
                x: 54.0,
                y: y + 4.0,
                size: 10.0,
                text: format!("{}", k * 5),
                anchor: Anchor::End,
                bold: false,
                fill: Color(0, 0, 0),
            });
        }
        elements.push(Element::Line {
            x1: 70.0,
            y1: 500.0,
            x2: 850.0,
            y2: 80.0,
            stroke: Color(200, 30, 30),
            width: 2.5,
        });
        elements.push(Element::Text {
            x: 450.0,
            y: 26.0,
            size: 18.0,
            text: "Delmål & “progress” <BT> — Åsa's".to_string(),
            anchor: Anchor::Middle,
            bold: true,
            fill: Color(0, 0, 0),
        });
        Chart {
            width: 900.0,
            height: 600.0,
            title: "Framsteg för Åsa Öberg <BT1–BT18>".to_string(),
            elements,
        }
    }

    #[test]
    fn svg_structure() {
        let c = bar_chart();
        let svg = c.to_svg();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("viewBox=\"0 0 900 600\""));
        assert!(svg
            .contains("<title id=\"chart-title\">Framsteg för Åsa Öberg &lt;BT1–BT18&gt;</title>"));
        assert!(svg.contains("Delmål &amp; “progress” &lt;BT&gt; — Åsa&#39;s"));
        assert!(svg.contains("font-family=\"DejaVu Sans, sans-serif\""));
        // 18 bars plus the background.
        assert_eq!(svg.matches("<rect ").count(), 19);
        assert_eq!(svg.matches("<text ").count(), 18 + 5 + 1);
        assert_eq!(
            svg.matches("<text ").count(),
            svg.matches("</text>").count()
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains(".000"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(1.234_567), "1.23");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f32::NAN), "0");
        assert_eq!(num(2.999), "3");
    }

    #[test]
    fn png_pixels() {
        let c = bar_chart();
        let bytes = c.to_png(2.0).expect("png");
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .expect("decode")
            .to_rgb8();
        assert_eq!(img.dimensions(), (1800, 1200));
        // Inside the last bar (x 818..852, y 65..540), away from the red line.
        let p = img.get_pixel(2 * 835, 2 * 500);
        assert_eq!(p.0, [30, 90 + 17 * 5, 160]);
        // Background stays white.
        assert_eq!(img.get_pixel(5, 5).0, [255, 255, 255]);
        // Vertical axis at x=60, width 1 -> device columns 119 and 120.
        assert_eq!(img.get_pixel(119, 600).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(120, 600).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(118, 600).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(121, 600).0, [255, 255, 255]);
        // Diagonal line passes through its midpoint.
        let mid = img.get_pixel(2 * 460, 2 * 290).0;
        assert!(mid[0] > 150 && mid[1] < 80, "{mid:?}");
        // Title text region has dark pixels, and the anchor centred it.
        let dark = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|v| *v < 100))
                .count()
        };
        assert!(dark(2 * 300, 2 * 600, 2 * 10, 2 * 30) > 200);
        assert_eq!(dark(0, 2 * 200, 2 * 5, 2 * 30), 0);
        // End-anchored tick labels sit left of x=54.
        assert!(dark(2 * 30, 2 * 54, 2 * 535, 2 * 545) > 10);
        assert_eq!(dark(2 * 55, 2 * 59, 2 * 530, 2 * 539), 0);
    }

    #[test]
    fn png_rejects_bad_sizes() {
        let mut c = bar_chart();
        assert!(c.to_png(0.0).is_err());
        assert!(c.to_png(f32::NAN).is_err());
        assert!(c.to_png(100.0).is_err());
        c.width = -5.0;
        assert!(c.to_png(1.0).is_err());
    }

    #[test]
    fn odd_elements_do_not_panic() {
        let c = Chart {
            width: 50.0,
            height: 40.0,
            title: String::new(),
            elements: vec![
                Element::Rect {
                    x: -10.0,
                    y: 30.0,
                    w: 100.0,
                    h: -50.0,
                    fill: Color(1, 2, 3),
                },
                Element::Rect {
                    x: f32::NAN,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0,
                    fill: Color(1, 2, 3),
                },
                Element::Line {
                    x1: 0.0,
                    y1: 0.0,
                    x2: 0.0,
                    y2: 0.0,
                    stroke: Color(0, 0, 0),
                    width: 3.0,
                },
                Element::Line {
                    x1: -100.0,
                    y1: -100.0,
                    x2: 500.0,
                    y2: 300.0,
                    stroke: Color(0, 0, 0),
                    width: 0.2,
                },
                Element::Text {
                    x: 45.0,
                    y: 80.0,
                    size: 300.0,
                    text: "\u{7}漢字\u{1F600}".into(),
                    anchor: Anchor::End,
                    bold: false,
                    fill: Color(0, 0, 0),
                },
                Element::Text {
                    x: 0.0,
                    y: 0.0,
                    size: -1.0,
                    text: "x".into(),
                    anchor: Anchor::Start,
                    bold: true,
                    fill: Color(0, 0, 0),
                },
            ],
        };
        let png = c.to_png(1.5).expect("png");
        assert!(image::load_from_memory(&png).is_ok());
        let svg = c.to_svg();
        assert!(
            svg.contains("height=\"50\""),
            "negative height flipped: {svg}"
        );
    }

    #[test]
    fn png_timing() {
        let c = bar_chart();
        let _ = c.to_png(2.0).expect("warm-up");
        let n = 5;
        let t = std::time::Instant::now();
        let mut size = 0;
        for _ in 0..n {
            size = c.to_png(2.0).expect("png").len();
        }
        let per = t.elapsed() / n;
        let t = std::time::Instant::now();
        let svg = c.to_svg();
        let svg_time = t.elapsed();
        // Set CHART_DUMP_DIR to look at the output by eye.
        if let Ok(dir) = std::env::var("CHART_DUMP_DIR") {
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join("chart.svg"), &svg).expect("write svg");
            std::fs::write(dir.join("chart.png"), c.to_png(1.0).expect("png")).expect("write png");
        }
        eprintln!(
            "chart bench: 900x600 @2x -> 1800x1200 PNG {size} bytes in {per:?}; SVG {} bytes in {svg_time:?}",
            svg.len()
        );
        if !cfg!(debug_assertions) {
            assert!(per.as_millis() < 100, "too slow: {per:?}");
        }
    }
}
