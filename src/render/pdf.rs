//! A4 documents for the portfolio exports (dossier, certificate drafts), written with the
//! maintained crate [`krilla`].
//!
//! Why krilla: it subsets the embedded DejaVu Sans fonts by itself (a dossier carries only
//! the glyphs it shows), writes tagged PDF, and checks PDF/A-2 level A and PDF/UA-1 with its
//! own validator while writing. Swedish public bodies must publish accessible documents,
//! and the archive wants PDF/A; the hand-written writer this replaces did neither.
//!
//! What is tagged: the document (language `sv`, title shown by viewers), headings as
//! `H1`..`H3` (also the bookmarks), paragraphs and small print as `P`, tables as `Table`
//! with a `THead` of column headers (`TH`, scope column) and a `TBody` of rows (`TD`),
//! key/value blocks as two-column tables whose keys are row headers (`TH`, scope row).
//! Rules, page footers and table headers repeated on continuation pages are artifacts,
//! so screen readers skip them.
//!
//! This module lays the content out (word wrap, page breaks, keeping headings and table
//! headers with what follows) into a display list per page; `export` hands that list and
//! the structure to krilla. Text is placed glyph by glyph with the advances from `fonts`,
//! so measured and drawn widths agree; there is no kerning, as before.
//!
//! Output is deterministic: the same calls with the same `created` timestamp give
//! byte-identical files (krilla derives the file and XMP ids from the content). Dossier
//! PDFs rely on that: the service seals the bytes with a signed manifest line after
//! `%%EOF` (`dossier::signing::seal_pdf`). That line lies outside what krilla validated;
//! strict PDF/A readers may flag trailing data, viewers and pdftotext ignore it.

mod export;
mod fonts;
mod text;

use chrono::{DateTime, Utc};

use crate::error::AppError;
use fonts::{text_width, Face};
use text::{cells, one_line, wrap};

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
/// Titles go into the document information, the XMP metadata and every footer; PDF/A
/// caps strings at 32,767 bytes, so a (user-supplied) title is cut well below that.
const MAX_TITLE_CHARS: usize = 300;

/// Where a piece of content belongs in the logical structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// Not part of the content: rules, footers, repeated table headers.
    Artifact(Artifact),
    /// Cell `col` of row `row` of block `block` (headings and paragraphs use 0, 0; in a
    /// table with column headers, row 0 is the header row).
    Content {
        block: usize,
        row: usize,
        col: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Artifact {
    Layout,
    Footer,
    Pagination,
}

/// One drawing operation; `baseline` and `y` are measured from the top edge, as krilla
/// measures them.
#[derive(Debug)]
enum Op {
    Text {
        style: Style,
        x: f32,
        baseline: f32,
        text: String,
        mark: Mark,
    },
    Rule {
        x0: f32,
        x1: f32,
        y: f32,
    },
}

/// A logical block, in reading order; its content is found through `Mark::Content`.
#[derive(Debug)]
enum Block {
    Heading {
        level: u8,
        text: String,
        page: usize,
        y: f32,
    },
    Paragraph,
    Table {
        /// Row 0 holds column headers.
        column_headers: bool,
        /// Column 0 holds row headers (key/value blocks).
        row_headers: bool,
        rows: usize,
        cols: usize,
    },
}

/// How a line of text looks: face, size in points, grey level (0 = black).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Style {
    face: Face,
    size: f32,
    grey: f32,
}

impl Style {
    const fn black(face: Face, size: f32) -> Style {
        Style {
            face,
            size,
            grey: 0.0,
        }
    }
}

/// One column of a row: pre-wrapped lines placed at `x`.
struct Cell {
    x: f32,
    style: Style,
    lines: Vec<String>,
    mark: Mark,
}

/// A block whose cells advance line by line in lockstep (table row, key/value pair,
/// header row).
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

    /// The same row drawn again on a continuation page: an artifact, since the reader
    /// has already met it.
    fn as_artifact(&self) -> Row {
        Row {
            cells: self
                .cells
                .iter()
                .map(|c| Cell {
                    x: c.x,
                    style: c.style,
                    lines: c.lines.clone(),
                    mark: Mark::Artifact(Artifact::Pagination),
                })
                .collect(),
            line_h: self.line_h,
            pad: self.pad,
            rule: self.rule,
        }
    }
}

/// A4 document built top to bottom; see the module docs.
pub struct Document {
    title: String,
    author: String,
    created: DateTime<Utc>,
    /// Display list of every page; the last one is current.
    pages: Vec<Vec<Op>>,
    /// Distance from the top edge to the top of the next line box.
    y: f32,
    blocks: Vec<Block>,
}

impl Document {
    /// A4 portrait, 50 pt margins, DejaVu Sans 10 pt body.
    pub fn new(title: &str, author: &str, created: DateTime<Utc>) -> Document {
        Document {
            title: one_line(title),
            author: one_line(author),
            created,
            pages: vec![Vec::new()],
            y: MARGIN,
            blocks: Vec::new(),
        }
    }

    /// Level 1: 18 pt bold, 2: 14 pt bold, 3 and deeper: 11 pt bold. The heading moves
    /// to the next page together with room for one body line, so a heading never ends up
    /// alone at the bottom of a page.
    pub fn heading(&mut self, text: &str, level: u8) {
        let level = level.clamp(1, 3);
        let size = match level {
            1 => 18.0,
            2 => 14.0,
            _ => 11.0,
        };
        let lines = wrap(Face::Bold, &text.replace('\n', " "), size, TEXT_W);
        let line_h = size * LEADING;
        let before = if self.at_page_top() { 0.0 } else { size * 0.6 };
        let after = size * 0.3;
        let needed = before + lines.len() as f32 * line_h + after + BODY_SIZE * LEADING;
        if self.y + needed > BOTTOM {
            self.new_page();
        } else {
            self.y += before;
        }
        let block = self.blocks.len();
        self.blocks.push(Block::Heading {
            level,
            text: one_line(text),
            page: self.pages.len() - 1,
            y: self.y,
        });
        let mark = Mark::Content {
            block,
            row: 0,
            col: 0,
        };
        for line in &lines {
            self.ensure(line_h);
            self.show(
                Style::black(Face::Bold, size),
                MARGIN,
                self.y + size,
                line,
                mark,
            );
            self.y += line_h;
        }
        self.y += after;
    }

    /// Word-wrapped body text; '\n' starts a new line.
    pub fn paragraph(&mut self, text: &str) {
        self.flow(text, Style::black(Face::Regular, BODY_SIZE));
        self.y += BODY_SIZE * 0.5;
    }

    /// 8 pt grey wrapped text, for hashes, ids and audit facts.
    pub fn small(&mut self, text: &str) {
        self.flow(
            text,
            Style {
                face: Face::Regular,
                size: SMALL_SIZE,
                grey: GREY,
            },
        );
        self.y += SMALL_SIZE * 0.4;
    }

    /// Bold keys in a fixed 150 pt column next to wrapped values, tagged as a table with
    /// row headers. Each pair stays on one page unless it is taller than a page.
    pub fn key_values(&mut self, rows: &[(&str, &str)]) {
        if rows.is_empty() {
            return;
        }
        let block = self.blocks.len();
        self.blocks.push(Block::Table {
            column_headers: false,
            row_headers: true,
            rows: rows.len(),
            cols: 2,
        });
        for (i, (key, value)) in rows.iter().enumerate() {
            let mark = |col| Mark::Content { block, row: i, col };
            let row = Row {
                cells: vec![
                    Cell {
                        x: MARGIN,
                        style: Style::black(Face::Bold, BODY_SIZE),
                        lines: wrap(Face::Bold, key, BODY_SIZE, KEY_COL_W - 8.0),
                        mark: mark(0),
                    },
                    Cell {
                        x: MARGIN + KEY_COL_W,
                        style: Style::black(Face::Regular, BODY_SIZE),
                        lines: wrap(Face::Regular, value, BODY_SIZE, TEXT_W - KEY_COL_W),
                        mark: mark(1),
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

    /// `widths` are fractions of the text width; when they do not match the header count
    /// (or are not positive) the columns are made equal, since a broken layout is better
    /// than no export. Rows with missing cells are padded, extra cells ignored.
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
        let block = self.blocks.len();
        self.blocks.push(Block::Table {
            column_headers: true,
            row_headers: false,
            rows: rows.len() + 1,
            cols: ncols,
        });
        let make_row = |texts: &mut dyn Iterator<Item = &str>, face: Face, row: usize| Row {
            cells: texts
                .zip(xs.iter().zip(&fractions))
                .enumerate()
                .map(|(col, (t, (&x, fr)))| Cell {
                    x: x + CELL_PAD_X,
                    style: Style::black(face, TABLE_SIZE),
                    lines: wrap(face, t, TABLE_SIZE, fr * TEXT_W - 2.0 * CELL_PAD_X),
                    mark: Mark::Content { block, row, col },
                })
                .collect(),
            line_h: TABLE_SIZE * LEADING,
            pad: CELL_PAD_Y,
            rule: true,
        };
        let header = make_row(
            &mut (0..ncols).map(|i| headers.get(i).copied().unwrap_or("")),
            Face::Bold,
            0,
        );
        let table_x1 = x;
        // The header must not be stranded: keep it with the first row.
        let first_h = rows.first().map_or(0.0, |r| {
            make_row(&mut cells(r, ncols).into_iter(), Face::Regular, 1).height()
        });
        let first_fits_page = header.height() + first_h <= BOTTOM - MARGIN;
        if self.y + header.height() + if first_fits_page { first_h } else { 0.0 } > BOTTOM {
            self.new_page();
        }
        self.draw_header(&header, table_x1);
        let repeated = header.as_artifact();
        for (i, r) in rows.iter().enumerate() {
            let row = make_row(&mut cells(r, ncols).into_iter(), Face::Regular, i + 1);
            self.place_row(&row, Some((&repeated, table_x1)));
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

    /// Starts a new page, unless the current one is still empty: a blank page in an
    /// export is never intended.
    pub fn page_break(&mut self) {
        let empty = self.pages.last().is_none_or(Vec::is_empty);
        if !self.at_page_top() || !empty {
            self.new_page();
        }
    }

    /// Finishes: footer on every page "<title> — sida N av M", returns the PDF bytes.
    ///
    /// Errors are internal: everything the callers pass is cleaned before it reaches
    /// krilla (control and private-use characters dropped, missing glyphs shown as '?',
    /// titles shortened), so a failed PDF/A or PDF/UA validation means a defect here.
    pub fn finish(mut self) -> Result<Vec<u8>, AppError> {
        self.add_footers();
        export::write(&self)
    }

    fn at_page_top(&self) -> bool {
        self.y <= MARGIN
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    fn push(&mut self, op: Op) {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    /// Breaks the page when `h` more points would not fit, except at the top of a page
    /// where breaking could not help.
    fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM && !self.at_page_top() {
            self.new_page();
        }
    }

    fn flow(&mut self, text: &str, style: Style) {
        let block = self.blocks.len();
        self.blocks.push(Block::Paragraph);
        let mark = Mark::Content {
            block,
            row: 0,
            col: 0,
        };
        let lines = wrap(style.face, text, style.size, TEXT_W);
        let line_h = style.size * LEADING;
        for line in &lines {
            self.ensure(line_h);
            self.show(style, MARGIN, self.y + style.size, line, mark);
            self.y += line_h;
        }
    }

    /// Records one line of text. Empty lines are kept when they carry content: an empty
    /// table cell still needs its (empty) place in the structure.
    fn show(&mut self, style: Style, x: f32, baseline: f32, text: &str, mark: Mark) {
        if text.is_empty() && matches!(mark, Mark::Artifact(_)) {
            return;
        }
        let text = fonts::visible(style.face, text);
        self.push(Op::Text {
            style,
            x,
            baseline,
            text,
            mark,
        });
    }

    fn rule(&mut self, x0: f32, x1: f32, y: f32) {
        self.push(Op::Rule { x0, x1, y });
    }

    fn draw_header(&mut self, header: &Row, x1: f32) {
        self.rule(MARGIN, x1, self.y);
        self.draw_lines(header, 0, header.line_count(), true, true);
        self.rule(MARGIN, x1, self.y);
    }

    /// Draws lines `from..to` of a row at the cursor and advances it. A cell without
    /// text still records one empty line on its first line, so that it has content.
    fn draw_lines(&mut self, row: &Row, from: usize, to: usize, pad_top: bool, pad_bottom: bool) {
        if pad_top {
            self.y += row.pad;
        }
        for i in from..to {
            for cell in &row.cells {
                if let Some(line) = cell.lines.get(i) {
                    let baseline = self.y + cell.style.size;
                    self.show(cell.style, cell.x, baseline, line, cell.mark);
                }
            }
            self.y += row.line_h;
        }
        if pad_bottom {
            self.y += row.pad;
        }
    }

    /// Places a row without splitting it, unless it is taller than a page; then it is
    /// split between lines. `header` is repeated on every new page the row causes.
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
        let total = self.pages.len();
        let mut title = self.title.clone();
        let w = |t: &str| text_width(Face::Regular, t, SMALL_SIZE);
        let suffix_w = w(&format!(" — sida {total} av {total}"));
        // Very long titles are shortened so the footer stays on the page.
        if w(&title) + suffix_w > TEXT_W {
            while !title.is_empty() && w(&title) + suffix_w + w("…") > TEXT_W {
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
            let op = Op::Text {
                style: Style {
                    face: Face::Regular,
                    size: SMALL_SIZE,
                    grey: GREY,
                },
                x: (PAGE_W - w(&text)) / 2.0,
                baseline: PAGE_H - FOOTER_BASELINE,
                text: fonts::visible(Face::Regular, &text),
                mark: Mark::Artifact(Artifact::Footer),
            };
            if let Some(page) = self.pages.get_mut(i) {
                page.push(op);
            }
        }
    }
}
