//! Minimal PDF 1.7 writer for the portfolio exports.
//!
//! Hand-written instead of pulling in a PDF crate because the service only
//! needs flowing text, key/value blocks and ruled tables, and every extra
//! dependency costs build time on small CI machines. Text is set in DejaVu
//! Sans, embedded as a CIDFontType2 with Identity-H encoding so that any
//! character the font covers (Swedish letters, dashes, typographic quotes)
//! renders and extracts correctly, without the 256-character limit of simple
//! fonts.
//!
//! Output is deterministic: the same calls with the same `created` timestamp
//! give byte-identical files, which keeps signatures and caching stable.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef};
use chrono::{DateTime, Utc};

use super::{BOLD_TTF, REGULAR_TTF};

/// A4 in points; the two-decimal value is what viewers report as A4.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 50.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Lowest point (measured from the top edge) that body content may reach.
const BOTTOM: f32 = PAGE_H - MARGIN;
const BODY_SIZE: f32 = 10.0;
const SMALL_SIZE: f32 = 8.0;
const TABLE_SIZE: f32 = 9.0;
/// Line height as a multiple of the font size; DejaVu's ascent+descent is
/// 1.164 em, so 1.25 leaves a little air without looking double-spaced.
const LEADING: f32 = 1.25;
const KEY_COL_W: f32 = 150.0;
const CELL_PAD_X: f32 = 3.0;
const CELL_PAD_Y: f32 = 2.5;
const RULE_W: f32 = 0.5;
const GREY: f32 = 0.4;
const RULE_GREY: f32 = 0.55;
/// Footer baseline, measured from the bottom edge, inside the bottom margin.
const FOOTER_BASELINE: f32 = 28.0;
/// Chars below this are looked up once per process into a table, because the
/// cmap lookup in ab_glyph is a binary search and body text is dominated by
/// Latin, punctuation and the General Punctuation block.
const FAST_MAP_LIMIT: usize = 0x2200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Face {
    Regular = 0,
    Bold = 1,
}

/// Per-process font facts; everything a document needs is derived once so
/// that building a document never re-parses the font.
struct FontInfo {
    data: &'static [u8],
    base_name: &'static str,
    bold: bool,
    /// Advance widths in PDF glyph space (1/1000 em), indexed by glyph id.
    advances: Vec<f32>,
    fast_map: Vec<u16>,
    font: Option<FontRef<'static>>,
    question_gid: u16,
    ascent: i32,
    descent: i32,
    cap_height: i32,
    bbox: [i32; 4],
    /// Flate-compressed font program, built on first use: compressing the
    /// ~750 KB file costs tens of milliseconds, far more than a whole
    /// document, so it must not happen per document.
    compressed: OnceLock<Option<Vec<u8>>>,
}

impl FontInfo {
    fn load(data: &'static [u8], base_name: &'static str, bold: bool) -> FontInfo {
        let font = FontRef::try_from_slice(data).ok();
        let mut info = FontInfo {
            data,
            base_name,
            bold,
            advances: Vec::new(),
            fast_map: Vec::new(),
            font: None,
            question_gid: 0,
            ascent: 928,
            descent: -236,
            cap_height: 729,
            bbox: [-1021, -463, 1793, 1232],
            compressed: OnceLock::new(),
        };
        let Some(font) = font else {
            // A broken embedded font is a build error in practice; degrade to
            // .notdef boxes with a plausible width rather than panicking.
            return info;
        };
        let upem = font.units_per_em().unwrap_or(1000.0);
        let to_pdf = |v: f32| v * 1000.0 / upem;
        info.advances = (0..font.glyph_count())
            .map(|g| {
                let id = ab_glyph::GlyphId(u16::try_from(g).unwrap_or(0));
                to_pdf(font.h_advance_unscaled(id))
            })
            .collect();
        info.fast_map = (0..FAST_MAP_LIMIT)
            .map(|u| {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .map_or(0, |c| font.glyph_id(c).0)
            })
            .collect();
        info.question_gid = font.glyph_id('?').0;
        info.ascent = to_pdf(font.ascent_unscaled()).round() as i32;
        info.descent = to_pdf(font.descent_unscaled()).round() as i32;
        if let Some(outline) = font.outline(font.glyph_id('H')) {
            // ab_glyph stores the glyph's y_max in `min.y` (screen-style
            // rect), so take whichever is larger.
            let top = outline.bounds.min.y.max(outline.bounds.max.y);
            info.cap_height = to_pdf(top).round() as i32;
        }
        if let Some(head) = sfnt_table(data, b"head") {
            let read = |at: usize| {
                head.get(at..at + 2)
                    .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])))
            };
            if let (Some(x0), Some(y0), Some(x1), Some(y1)) =
                (read(36), read(38), read(40), read(42))
            {
                info.bbox = [x0, y0, x1, y1].map(|v| to_pdf(v).round() as i32);
            }
        }
        info.font = Some(font);
        info
    }

    /// Glyph id for a character; characters the font lacks fall back to '?'
    /// so that a reader sees an obvious marker instead of an empty box.
    fn gid(&self, c: char) -> u16 {
        let code = c as usize;
        let g = if code < self.fast_map.len() {
            self.fast_map[code]
        } else {
            self.font.as_ref().map_or(0, |f| f.glyph_id(c).0)
        };
        if g == 0 {
            self.question_gid
        } else {
            g
        }
    }

    fn advance(&self, gid: u16) -> f32 {
        self.advances
            .get(usize::from(gid))
            .copied()
            .unwrap_or(600.0)
    }

    fn text_width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(self.gid(c))).sum::<f32>() * size / 1000.0
    }

    fn compressed(&self) -> Option<&[u8]> {
        self.compressed
            .get_or_init(|| deflate(self.data))
            .as_deref()
    }
}

fn fonts() -> &'static [FontInfo; 2] {
    static FONTS: OnceLock<[FontInfo; 2]> = OnceLock::new();
    FONTS.get_or_init(|| {
        [
            FontInfo::load(REGULAR_TTF, "DejaVuSans", false),
            FontInfo::load(BOLD_TTF, "DejaVuSans-Bold", true),
        ]
    })
}

/// Raw bytes of one table of a TrueType file; ab_glyph does not expose the
/// `head` bounding box that the PDF font descriptor wants.
fn sfnt_table<'a>(data: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let be16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let be32 = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = usize::from(be16(4)?);
    (0..count).find_map(|i| {
        let rec = 12 + 16 * i;
        if data.get(rec..rec + 4)? != tag {
            return None;
        }
        let off = be32(rec + 8)?;
        let len = be32(rec + 12)?;
        data.get(off..off.checked_add(len)?)
    })
}

fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Content streams are written with two decimals: enough for 1/7200 inch
/// and it keeps output identical across platforms (no float formatting
/// differences beyond rounding).
fn push_num(out: &mut String, v: f32) {
    let v = if v.is_finite() { v } else { 0.0 };
    let r = (f64::from(v) * 100.0).round() as i64;
    if r < 0 {
        out.push('-');
    }
    let a = r.unsigned_abs();
    push_uint(out, a / 100);
    let frac = a % 100;
    if frac != 0 {
        out.push('.');
        out.push(char::from(b'0' + (frac / 10) as u8));
        if !frac.is_multiple_of(10) {
            out.push(char::from(b'0' + (frac % 10) as u8));
        }
    }
}

fn push_uint(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

fn push_hex4(out: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((v >> shift) & 0xF)]));
    }
}

/// PDF text strings outside ASCII must be UTF-16BE with a BOM; writing every
/// Info string that way as a hex string also sidesteps escaping rules.
fn utf16_hex(text: &str) -> String {
    let mut out = String::from("<FEFF");
    for unit in text.encode_utf16() {
        push_hex4(&mut out, unit);
    }
    out.push('>');
    out
}

/// Tabs become spaces and other control characters are dropped: they have no
/// glyph and would otherwise surface as '?' markers.
fn clean(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            '\n' => Some('\n'),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Greedy word wrap. Words wider than the line are split between characters
/// (no hyphenation) so long hashes and URLs never run off the page.
fn wrap(font: &FontInfo, text: &str, size: f32, max_w: f32) -> Vec<String> {
    let text = clean(text);
    let max_w = max_w.max(size);
    let space_w = font.text_width(" ", size);
    let mut lines = Vec::new();
    for hard in text.split('\n') {
        let mut cur = String::new();
        let mut cur_w = 0.0f32;
        for word in hard.split(' ').filter(|w| !w.is_empty()) {
            let ww = font.text_width(word, size);
            if !cur.is_empty() && cur_w + space_w + ww <= max_w {
                cur.push(' ');
                cur.push_str(word);
                cur_w += space_w + ww;
                continue;
            }
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
                cur_w = 0.0;
            }
            if ww <= max_w {
                cur.push_str(word);
                cur_w = ww;
                continue;
            }
            for c in word.chars() {
                let cw = font.advance(font.gid(c)) * size / 1000.0;
                if !cur.is_empty() && cur_w + cw > max_w {
                    lines.push(std::mem::take(&mut cur));
                    cur_w = 0.0;
                }
                cur.push(c);
                cur_w += cw;
            }
        }
        lines.push(cur);
    }
    lines
}

/// One column of a row: pre-wrapped lines placed at `x`.
struct Cell {
    x: f32,
    face: Face,
    size: f32,
    grey: f32,
    lines: Vec<String>,
}

/// A block whose cells advance line by line in lockstep (table row,
/// key/value pair, header row).
struct Row {
    cells: Vec<Cell>,
    line_h: f32,
    pad: f32,
    /// Horizontal rule under the row (tables only).
    rule: bool,
}

impl Row {
    fn line_count(&self) -> usize {
        self.cells.iter().map(|c| c.lines.len()).max().unwrap_or(0)
    }

    fn height(&self) -> f32 {
        self.line_count() as f32 * self.line_h + 2.0 * self.pad
    }
}

/// A4 document built top to bottom; see the module docs for why it exists.
pub struct Document {
    title: String,
    author: String,
    created: DateTime<Utc>,
    /// Uncompressed content stream of every page; the last one is current.
    pages: Vec<String>,
    /// Distance from the top edge to the top of the next line box.
    y: f32,
    /// Per face, the character each used glyph id stands for ('\0' =
    /// unused). A flat table rather than a map because it is touched for
    /// every character written.
    used: [Vec<char>; 2],
    subset_fonts: bool,
}

impl Document {
    /// A4 portrait, 50 pt margins, DejaVu Sans 10 pt body.
    pub fn new(title: &str, author: &str, created: DateTime<Utc>) -> Document {
        let f = fonts();
        Document {
            title: clean(title).replace('\n', " "),
            author: clean(author).replace('\n', " "),
            created,
            pages: vec![String::new()],
            y: MARGIN,
            used: [
                vec!['\0'; f[0].advances.len().max(1)],
                vec!['\0'; f[1].advances.len().max(1)],
            ],
            subset_fonts: true,
        }
    }

    /// Embedding only the used glyphs (the default) keeps a typical export
    /// around 50 KB instead of ~800 KB. Turning it off embeds both font
    /// files whole, e.g. for documents meant to be edited later.
    pub fn set_font_subsetting(&mut self, on: bool) {
        self.subset_fonts = on;
    }

    /// Number of pages so far (the current page counts even when empty).
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Level 1: 18 pt bold, 2: 14 pt bold, 3 and deeper: 11 pt bold. The
    /// heading moves to the next page together with room for one body line,
    /// so a heading never ends up alone at the bottom of a page.
    pub fn heading(&mut self, text: &str, level: u8) {
        let size = match level {
            0 | 1 => 18.0,
            2 => 14.0,
            _ => 11.0,
        };
        let lines = wrap(&fonts()[1], &text.replace('\n', " "), size, TEXT_W);
        let line_h = size * LEADING;
        let before = if self.at_page_top() { 0.0 } else { size * 0.6 };
        let after = size * 0.3;
        let needed = before + lines.len() as f32 * line_h + after + BODY_SIZE * LEADING;
        if self.y + needed > BOTTOM {
            self.new_page();
        } else {
            self.y += before;
        }
        for line in &lines {
            self.ensure(line_h);
            self.show(Face::Bold, size, 0.0, MARGIN, self.y + size, line);
            self.y += line_h;
        }
        self.y += after;
    }

    /// Word-wrapped body text; '\n' starts a new line.
    pub fn paragraph(&mut self, text: &str) {
        self.flow(text, Face::Regular, BODY_SIZE, 0.0);
        self.y += BODY_SIZE * 0.5;
    }

    /// 8 pt grey wrapped text, for hashes, ids and audit facts.
    pub fn small(&mut self, text: &str) {
        self.flow(text, Face::Regular, SMALL_SIZE, GREY);
        self.y += SMALL_SIZE * 0.4;
    }

    /// Bold keys in a fixed 150 pt column next to wrapped values. Each pair
    /// stays on one page unless it is taller than a page.
    pub fn key_values(&mut self, rows: &[(&str, &str)]) {
        let f = fonts();
        for (key, value) in rows {
            let row = Row {
                cells: vec![
                    Cell {
                        x: MARGIN,
                        face: Face::Bold,
                        size: BODY_SIZE,
                        grey: 0.0,
                        lines: wrap(&f[1], key, BODY_SIZE, KEY_COL_W - 8.0),
                    },
                    Cell {
                        x: MARGIN + KEY_COL_W,
                        face: Face::Regular,
                        size: BODY_SIZE,
                        grey: 0.0,
                        lines: wrap(&f[0], value, BODY_SIZE, TEXT_W - KEY_COL_W),
                    },
                ],
                line_h: BODY_SIZE * LEADING,
                pad: 1.0,
                rule: false,
            };
            self.place_row(&row, None);
        }
        self.y += BODY_SIZE * 0.5;
    }

    /// `widths` are fractions of the text width; when they do not match the
    /// header count (or are not positive) the columns are made equal, since
    /// a broken layout is better than no export. Rows with missing cells are
    /// padded, extra cells ignored.
    pub fn table(&mut self, headers: &[&str], widths: &[f32], rows: &[Vec<String>]) {
        let ncols = headers
            .len()
            .max(rows.iter().map(Vec::len).max().unwrap_or(0));
        if ncols == 0 {
            return;
        }
        let valid = widths.len() == ncols && widths.iter().all(|w| w.is_finite() && *w > 0.0);
        let fractions: Vec<f32> = if valid {
            let sum: f32 = widths.iter().sum();
            // Fractions summing to more than 1 would overflow the margin.
            let scale = if sum > 1.0 { 1.0 / sum } else { 1.0 };
            widths.iter().map(|w| w * scale).collect()
        } else {
            vec![1.0 / ncols as f32; ncols]
        };
        let mut xs = Vec::with_capacity(ncols);
        let mut x = MARGIN;
        for fr in &fractions {
            xs.push(x);
            x += fr * TEXT_W;
        }
        let f = fonts();
        let make_row = |texts: &mut dyn Iterator<Item = &str>, face: Face| Row {
            cells: texts
                .zip(xs.iter().zip(&fractions))
                .map(|(t, (&x, fr))| Cell {
                    x: x + CELL_PAD_X,
                    face,
                    size: TABLE_SIZE,
                    grey: 0.0,
                    lines: wrap(
                        &f[face as usize],
                        t,
                        TABLE_SIZE,
                        fr * TEXT_W - 2.0 * CELL_PAD_X,
                    ),
                })
                .collect(),
            line_h: TABLE_SIZE * LEADING,
            pad: CELL_PAD_Y,
            rule: true,
        };
        let header = make_row(
            &mut (0..ncols).map(|i| headers.get(i).copied().unwrap_or("")),
            Face::Bold,
        );
        let table_x1 = x;
        // The header must not be stranded: keep it with the first row.
        let first_h = rows.first().map_or(0.0, |r| {
            make_row(
                &mut (0..ncols).map(|i| r.get(i).map_or("", String::as_str)),
                Face::Regular,
            )
            .height()
        });
        let first_fits_page = header.height() + first_h <= BOTTOM - MARGIN;
        if self.y + header.height() + if first_fits_page { first_h } else { 0.0 } > BOTTOM {
            self.new_page();
        }
        self.draw_header(&header, table_x1);
        for r in rows {
            let row = make_row(
                &mut (0..ncols).map(|i| r.get(i).map_or("", String::as_str)),
                Face::Regular,
            );
            self.place_row(&row, Some((&header, table_x1)));
        }
        self.y += BODY_SIZE * 0.5;
    }

    /// Vertical space; spilling past the bottom starts a new page.
    pub fn spacer(&mut self, points: f32) {
        if points.is_finite() && points > 0.0 {
            self.y += points;
            if self.y > BOTTOM {
                self.new_page();
            }
        }
    }

    /// Starts a new page, unless the current one is still empty: a blank
    /// page in an export is never intended.
    pub fn page_break(&mut self) {
        if !self.at_page_top() || !self.current().is_empty() {
            self.new_page();
        }
    }

    /// Finishes: footer on every page "<title> — sida N av M", returns the
    /// PDF bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.add_footers();
        let f = fonts();
        let faces: Vec<Face> = [Face::Regular, Face::Bold]
            .into_iter()
            .filter(|face| self.used[*face as usize].iter().any(|c| *c != '\0'))
            .collect();
        let mut w = PdfWriter::new();
        // Object numbers: 1 catalog, 2 page tree, 3 info, then five objects
        // per font, then two per page (page, contents).
        let font_base = 4;
        let page_base = font_base + 5 * faces.len();
        let page_count = self.pages.len();

        w.begin(1);
        w.raw("<< /Type /Catalog /Pages 2 0 R /Lang (sv-SE) /ViewerPreferences << /DisplayDocTitle true >> >>");
        w.end();

        w.begin(2);
        let mut kids = String::from("<< /Type /Pages /Kids [");
        for i in 0..page_count {
            kids.push_str(&format!("{} 0 R ", page_base + 2 * i));
        }
        kids.push_str(&format!("] /Count {page_count} >>"));
        w.raw(&kids);
        w.end();

        w.begin(3);
        let date = self.created.format("D:%Y%m%d%H%M%SZ").to_string();
        w.raw(&format!(
            "<< /Title {} /Author {} /Creator (eportfolio) /Producer (eportfolio) /CreationDate ({date}) /ModDate ({date}) >>",
            utf16_hex(&self.title),
            utf16_hex(&self.author),
        ));
        w.end();

        let mut font_refs = String::from("<< ");
        for (i, face) in faces.iter().enumerate() {
            let base = font_base + 5 * i;
            font_refs.push_str(&format!("/F{} {} 0 R ", *face as usize + 1, base));
            write_font(
                &mut w,
                &f[*face as usize],
                &self.used[*face as usize],
                base,
                self.subset_fonts,
            );
        }
        font_refs.push_str(">>");

        for (i, content) in self.pages.iter().enumerate() {
            let num = page_base + 2 * i;
            w.begin(num);
            w.raw(&format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Resources << /Font {font_refs} >> /Contents {} 0 R >>",
                num + 1
            ));
            w.end();
            w.stream(num + 1, "", content.as_bytes(), true);
        }
        w.finish(1, 3)
    }

    fn at_page_top(&self) -> bool {
        self.y <= MARGIN
    }

    fn current(&mut self) -> &mut String {
        if self.pages.is_empty() {
            self.pages.push(String::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(String::new());
        self.y = MARGIN;
    }

    /// Breaks the page when `h` more points would not fit, except at the top
    /// of a page where breaking could not help.
    fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM && !self.at_page_top() {
            self.new_page();
        }
    }

    fn flow(&mut self, text: &str, face: Face, size: f32, grey: f32) {
        let lines = wrap(&fonts()[face as usize], text, size, TEXT_W);
        let line_h = size * LEADING;
        for line in &lines {
            self.ensure(line_h);
            self.show(face, size, grey, MARGIN, self.y + size, line);
            self.y += line_h;
        }
    }

    /// Writes one line of text; `baseline` is measured from the top edge.
    fn show(&mut self, face: Face, size: f32, grey: f32, x: f32, baseline: f32, text: &str) {
        if text.is_empty() {
            return;
        }
        let op = self.text_op(face, size, grey, x, baseline, text);
        self.current().push_str(&op);
    }

    /// Text-showing operators for one line; also records the glyphs used.
    fn text_op(
        &mut self,
        face: Face,
        size: f32,
        grey: f32,
        x: f32,
        baseline: f32,
        text: &str,
    ) -> String {
        let font = &fonts()[face as usize];
        let used = &mut self.used[face as usize];
        let mut op = String::with_capacity(40 + text.len() * 4);
        op.push_str("BT /F");
        op.push(if face == Face::Bold { '2' } else { '1' });
        op.push(' ');
        push_num(&mut op, size);
        op.push_str(" Tf ");
        push_num(&mut op, grey);
        op.push_str(" g ");
        push_num(&mut op, x);
        op.push(' ');
        push_num(&mut op, PAGE_H - baseline);
        op.push_str(" Td <");
        for c in text.chars() {
            let gid = font.gid(c);
            if let Some(slot) = used.get_mut(usize::from(gid)) {
                if *slot == '\0' {
                    // A missing character maps to the '?' glyph; record '?'
                    // so that extraction shows what the reader sees.
                    *slot = if gid == font.question_gid { '?' } else { c };
                }
            }
            push_hex4(&mut op, gid);
        }
        op.push_str("> Tj ET\n");
        op
    }

    fn rule(&mut self, x0: f32, x1: f32, y: f32) {
        let mut op = String::with_capacity(48);
        push_num(&mut op, RULE_W);
        op.push_str(" w ");
        push_num(&mut op, RULE_GREY);
        op.push_str(" G ");
        push_num(&mut op, x0);
        op.push(' ');
        push_num(&mut op, PAGE_H - y);
        op.push_str(" m ");
        push_num(&mut op, x1);
        op.push(' ');
        push_num(&mut op, PAGE_H - y);
        op.push_str(" l S\n");
        self.current().push_str(&op);
    }

    fn draw_header(&mut self, header: &Row, x1: f32) {
        self.rule(MARGIN, x1, self.y);
        self.draw_lines(header, 0, header.line_count(), true, true);
        self.rule(MARGIN, x1, self.y);
    }

    /// Draws lines `from..to` of a row at the cursor and advances it.
    fn draw_lines(&mut self, row: &Row, from: usize, to: usize, pad_top: bool, pad_bottom: bool) {
        if pad_top {
            self.y += row.pad;
        }
        for i in from..to {
            for cell in &row.cells {
                if let Some(line) = cell.lines.get(i) {
                    let baseline = self.y + cell.size;
                    self.show(cell.face, cell.size, cell.grey, cell.x, baseline, line);
                }
            }
            self.y += row.line_h;
        }
        if pad_bottom {
            self.y += row.pad;
        }
    }

    /// Places a row without splitting it, unless it is taller than a page;
    /// then it is split between lines. `header` is repeated on every new
    /// page the row causes.
    fn place_row(&mut self, row: &Row, header: Option<(&Row, f32)>) {
        let header_h = header.map_or(0.0, |(h, _)| h.height());
        let rule_x1 = header.map_or(MARGIN + TEXT_W, |(_, x1)| x1);
        let h = row.height();
        let n = row.line_count();
        if self.y + h <= BOTTOM {
            self.draw_lines(row, 0, n, true, true);
            if row.rule {
                self.rule(MARGIN, rule_x1, self.y);
            }
            return;
        }
        if h + header_h <= BOTTOM - MARGIN {
            self.break_with_header(header);
            self.draw_lines(row, 0, n, true, true);
        } else {
            // Taller than a page: split between lines.
            self.y += row.pad;
            for i in 0..n {
                let last = i + 1 == n;
                let need = row.line_h + if last { row.pad } else { 0.0 };
                if self.y + need > BOTTOM {
                    self.break_with_header(header);
                }
                self.draw_lines(row, i, i + 1, false, last);
            }
        }
        if row.rule {
            self.rule(MARGIN, rule_x1, self.y);
        }
    }

    fn break_with_header(&mut self, header: Option<(&Row, f32)>) {
        self.new_page();
        if let Some((h, x1)) = header {
            self.draw_header(h, x1);
        }
    }

    fn add_footers(&mut self) {
        let font = &fonts()[0];
        let total = self.pages.len();
        let mut title = self.title.clone();
        let suffix_w = font.text_width(&format!(" — sida {total} av {total}"), SMALL_SIZE);
        // Very long titles are shortened so the footer stays on the page.
        if font.text_width(&title, SMALL_SIZE) + suffix_w > TEXT_W {
            while !title.is_empty()
                && font.text_width(&title, SMALL_SIZE) + suffix_w + font.text_width("…", SMALL_SIZE)
                    > TEXT_W
            {
                title.pop();
            }
            title.push('…');
        }
        for i in 0..total {
            let text = if title.is_empty() {
                format!("sida {} av {total}", i + 1)
            } else {
                format!("{title} — sida {} av {total}", i + 1)
            };
            let w = font.text_width(&text, SMALL_SIZE);
            let op = self.text_op(
                Face::Regular,
                SMALL_SIZE,
                GREY,
                (PAGE_W - w) / 2.0,
                PAGE_H - FOOTER_BASELINE,
                &text,
            );
            if let Some(page) = self.pages.get_mut(i) {
                page.push_str(&op);
            }
        }
    }
}

/// Type0 font, CIDFontType2 descendant, descriptor, font file, ToUnicode:
/// objects `base..base+5`.
fn write_font(w: &mut PdfWriter, font: &FontInfo, used: &[char], base: usize, subset: bool) {
    let subset = if subset {
        subset_font(font.data, used)
    } else {
        None
    };
    // PDF requires subset fonts to carry a six-letter tag; deriving it from
    // the glyph set keeps output deterministic.
    let name = match &subset {
        Some(_) => {
            let h = fnv1a(
                &used
                    .iter()
                    .map(|c| u8::from(*c != '\0'))
                    .collect::<Vec<u8>>(),
                0xcbf2_9ce4_8422_2325,
            );
            let tag: String = (0..6)
                .map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8))
                .collect();
            format!("{tag}+{}", font.base_name)
        }
        None => font.base_name.to_string(),
    };
    w.begin(base);
    w.raw(&format!(
        "<< /Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /Identity-H /DescendantFonts [{} 0 R] /ToUnicode {} 0 R >>",
        base + 1,
        base + 4
    ));
    w.end();

    // Widths of used glyphs, grouped into runs of consecutive ids.
    let mut widths = String::from("[");
    let mut run_end: Option<usize> = None;
    for (gid, _) in used.iter().enumerate().filter(|(_, c)| **c != '\0') {
        if run_end != Some(gid) {
            if run_end.is_some() {
                widths.push_str("] ");
            }
            push_uint(&mut widths, gid as u64);
            widths.push_str(" [");
        } else {
            widths.push(' ');
        }
        let adv = font.advance(u16::try_from(gid).unwrap_or(0));
        push_uint(&mut widths, adv.round().max(0.0) as u64);
        run_end = Some(gid + 1);
    }
    if run_end.is_some() {
        widths.push(']');
    }
    widths.push(']');
    w.begin(base + 1);
    w.raw(&format!(
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{name} /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {} 0 R /DW 1000 /W {widths} /CIDToGIDMap /Identity >>",
        base + 2
    ));
    w.end();

    let [x0, y0, x1, y1] = font.bbox;
    w.begin(base + 2);
    w.raw(&format!(
        "<< /Type /FontDescriptor /FontName /{name} /Flags 32 /FontBBox [{x0} {y0} {x1} {y1}] /ItalicAngle 0 /Ascent {} /Descent {} /CapHeight {} /StemV {} /FontWeight {} /FontFile2 {} 0 R >>",
        font.ascent,
        font.descent,
        font.cap_height,
        if font.bold { 140 } else { 80 },
        if font.bold { 700 } else { 400 },
        base + 3
    ));
    w.end();

    match subset {
        Some(sub) => w.stream(base + 3, &format!("/Length1 {}", sub.len()), &sub, true),
        None => {
            let length1 = format!("/Length1 {}", font.data.len());
            match font.compressed() {
                Some(z) => w.stream_prepared(base + 3, &length1, z, true),
                None => w.stream_prepared(base + 3, &length1, font.data, false),
            }
        }
    }

    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(usize, char)> = used
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != '\0')
        .map(|(g, c)| (g, *c))
        .collect();
    // The CMap syntax limits each bfchar block to 100 entries.
    for chunk in entries.chunks(100) {
        push_uint(&mut cmap, chunk.len() as u64);
        cmap.push_str(" beginbfchar\n");
        for (gid, c) in chunk {
            cmap.push('<');
            push_hex4(&mut cmap, u16::try_from(*gid).unwrap_or(0));
            cmap.push_str("> <");
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                push_hex4(&mut cmap, *u);
            }
            cmap.push_str(">\n");
        }
        cmap.push_str("endbfchar\n");
    }
    cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    w.stream(base + 4, "", cmap.as_bytes(), true);
}

/// Tables a PDF viewer needs from an embedded TrueType font (the PDF spec's
/// list plus cmap, OS/2 and name, which some rasterisers look at). Layout
/// tables (GPOS, GSUB, kern) and glyph names (post) are dead weight because
/// positioning is already baked into the content stream.
const KEEP_TABLES: [&[u8; 4]; 12] = [
    b"OS/2", b"cmap", b"cvt ", b"fpgm", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp",
    b"name", b"prep",
];

/// Glyph-zeroing subset: every glyph that is not used (directly or as a
/// component of a composite) becomes empty, but glyph ids stay the same so
/// CIDToGIDMap Identity and the `W` array remain valid. Cuts DejaVu Sans
/// from ~750 KB to roughly the size of its metrics tables. None when the
/// font is not a plain `glyf` TrueType file; callers then embed it whole.
fn subset_font(data: &[u8], used: &[char]) -> Option<Vec<u8>> {
    let be16 = |t: &[u8], at: usize| t.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let be32 = |t: &[u8], at: usize| {
        t.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let head = sfnt_table(data, b"head")?;
    let loca = sfnt_table(data, b"loca")?;
    let glyf = sfnt_table(data, b"glyf")?;
    let num_glyphs = usize::from(be16(sfnt_table(data, b"maxp")?, 4)?);
    let long_loca = be16(head, 50)? != 0;
    let range = |g: usize| -> Option<(usize, usize)> {
        let (a, b) = if long_loca {
            (be32(loca, g * 4)? as usize, be32(loca, g * 4 + 4)? as usize)
        } else {
            (
                usize::from(be16(loca, g * 2)?) * 2,
                usize::from(be16(loca, g * 2 + 2)?) * 2,
            )
        };
        (a <= b && b <= glyf.len()).then_some((a, b))
    };

    let mut keep = vec![false; num_glyphs];
    let mut stack: Vec<usize> = used
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != '\0')
        .map(|(g, _)| g)
        .chain([0])
        .collect();
    while let Some(g) = stack.pop() {
        if g >= num_glyphs || keep[g] {
            continue;
        }
        keep[g] = true;
        let (a, b) = range(g)?;
        let gl = &glyf[a..b];
        // Negative contour count marks a composite glyph: walk its
        // component records so the parts are kept too.
        if gl.len() < 10 || (be16(gl, 0)? as i16) >= 0 {
            continue;
        }
        let mut at = 10;
        loop {
            let flags = be16(gl, at)?;
            stack.push(usize::from(be16(gl, at + 2)?));
            at += 4 + if flags & 0x0001 != 0 { 4 } else { 2 };
            at += if flags & 0x0008 != 0 {
                2
            } else if flags & 0x0040 != 0 {
                4
            } else if flags & 0x0080 != 0 {
                8
            } else {
                0
            };
            if flags & 0x0020 == 0 {
                break;
            }
        }
    }

    let mut new_glyf = Vec::new();
    let mut new_loca = Vec::with_capacity((num_glyphs + 1) * 4);
    for (g, k) in keep.iter().enumerate() {
        new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());
        if *k {
            let (a, b) = range(g)?;
            new_glyf.extend_from_slice(&glyf[a..b]);
            new_glyf.resize(new_glyf.len().next_multiple_of(4), 0);
        }
    }
    new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());
    let mut new_head = head.to_vec();
    // Long offsets, and a zero checksum adjustment until the file is known.
    new_head
        .get_mut(50..52)?
        .copy_from_slice(&1u16.to_be_bytes());
    new_head.get_mut(8..12)?.copy_from_slice(&[0; 4]);

    let tables: Vec<(&[u8; 4], &[u8])> = KEEP_TABLES
        .iter()
        .filter_map(|tag| {
            let body: &[u8] = match *tag {
                b"glyf" => &new_glyf,
                b"loca" => &new_loca,
                b"head" => &new_head,
                _ => sfnt_table(data, tag)?,
            };
            Some((*tag, body))
        })
        .collect();
    let n = u16::try_from(tables.len()).ok()?;
    let entry_selector = 15 - n.leading_zeros() as u16;
    let search_range = (1u16 << entry_selector) * 16;
    let mut out = Vec::with_capacity(new_glyf.len() + 128 * 1024);
    out.extend_from_slice(data.get(0..4)?);
    for v in [n, search_range, entry_selector, n * 16 - search_range] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut offset = 12 + 16 * tables.len();
    let mut head_at = 0;
    for (tag, body) in &tables {
        out.extend_from_slice(*tag);
        out.extend_from_slice(&checksum(body).to_be_bytes());
        out.extend_from_slice(&u32::try_from(offset).ok()?.to_be_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).ok()?.to_be_bytes());
        if *tag == b"head" {
            head_at = offset;
        }
        offset += body.len().next_multiple_of(4);
    }
    for (_, body) in &tables {
        out.extend_from_slice(body);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let adjust = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    out.get_mut(head_at + 8..head_at + 12)?
        .copy_from_slice(&adjust.to_be_bytes());
    Some(out)
}

/// TrueType table checksum: wrapping sum of big-endian u32 words, the last
/// one zero-padded.
fn checksum(data: &[u8]) -> u32 {
    data.chunks(4).fold(0u32, |sum, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        sum.wrapping_add(u32::from_be_bytes(w))
    })
}

/// Serialises objects and remembers their byte offsets for the xref table.
struct PdfWriter {
    out: Vec<u8>,
    offsets: Vec<usize>,
}

impl PdfWriter {
    fn new() -> PdfWriter {
        let mut out = Vec::with_capacity(1 << 20);
        // The binary comment marks the file as binary for transfer tools.
        out.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
        PdfWriter {
            out,
            offsets: vec![0],
        }
    }

    fn begin(&mut self, num: usize) {
        if self.offsets.len() <= num {
            self.offsets.resize(num + 1, 0);
        }
        self.offsets[num] = self.out.len();
        self.out
            .extend_from_slice(format!("{num} 0 obj\n").as_bytes());
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn end(&mut self) {
        self.out.extend_from_slice(b"\nendobj\n");
    }

    /// Stream object; compresses `data` when asked and worthwhile.
    fn stream(&mut self, num: usize, extra: &str, data: &[u8], compress: bool) {
        match compress.then(|| deflate(data)).flatten() {
            Some(z) => self.stream_prepared(num, extra, &z, true),
            None => self.stream_prepared(num, extra, data, false),
        }
    }

    fn stream_prepared(&mut self, num: usize, extra: &str, data: &[u8], flate: bool) {
        self.begin(num);
        let filter = if flate { " /Filter /FlateDecode" } else { "" };
        let sep = if extra.is_empty() { "" } else { " " };
        self.raw(&format!(
            "<< /Length {}{filter}{sep}{extra} >>\nstream\n",
            data.len()
        ));
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    fn finish(mut self, root: usize, info: usize) -> Vec<u8> {
        // The file ID only has to be unique per content; hashing the body
        // keeps the output deterministic without a random source.
        let id_a = fnv1a(&self.out, 0xcbf2_9ce4_8422_2325);
        let id_b = fnv1a(&self.out, 0x6c62_272e_07bb_0142);
        let xref_at = self.out.len();
        let size = self.offsets.len();
        let mut x = String::with_capacity(64 + size * 20);
        x.push_str(&format!("xref\n0 {size}\n0000000000 65535 f\r\n"));
        for off in &self.offsets[1..] {
            x.push_str(&format!("{off:010} 00000 n\r\n"));
        }
        x.push_str(&format!(
            "trailer\n<< /Size {size} /Root {root} 0 R /Info {info} 0 R /ID [<{id_a:016X}{id_b:016X}> <{id_a:016X}{id_b:016X}>] >>\nstartxref\n{xref_at}\n%%EOF\n"
        ));
        self.out.extend_from_slice(x.as_bytes());
        self.out
    }
}

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
