//! Hands a laid-out `Document` to krilla: pages from the display list, the tag tree from
//! the blocks, bookmarks from the headings, metadata, and the PDF/A-2a + PDF/UA-1 checks.

use std::collections::BTreeMap;
use std::num::NonZeroU16;

use krilla::color::luma;
use krilla::configure::{Accessibility, Archival, ConfigurationBuilder, PdfVersion};
use krilla::destination::XyzDestination;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::tagging::{
    self, ArtifactType, ContentTag, Identifier, SpanTag, TableHeaderScope, Tag, TagGroup, TagTree,
};
use krilla::text::{GlyphId, KrillaGlyph};
use krilla::SerializeSettings;

use super::fonts::{self, FaceInfo};
use super::{
    Artifact, Block, Document, Mark, Op, Style, MARGIN, PAGE_H, PAGE_W, RULE_GREY, RULE_W,
};
use crate::error::AppError;

/// The document language, for the catalog and the structure root.
const LANG: &str = "sv";

fn internal(what: &str) -> AppError {
    AppError::Internal(format!("PDF export: {what}"))
}

/// Leaf identifiers of every cell, keyed by (block, row, col), in drawing order.
type Leaves = BTreeMap<(usize, usize, usize), Vec<Identifier>>;

pub(super) fn write(doc: &Document) -> Result<Vec<u8>, AppError> {
    let faces = fonts::faces().ok_or_else(|| internal("the embedded DejaVu fonts do not parse"))?;
    let configuration = ConfigurationBuilder::new()
        .with_version(PdfVersion::Pdf17)
        .with_archival_validator(Archival::A2_A)
        .with_accessibility_validator(Accessibility::UA1)
        .finish()
        .map_err(|e| internal(&format!("configuration {e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        enable_tagging: true,
        ..SerializeSettings::default()
    };
    let mut pdf = krilla::Document::new_with(settings);
    let size = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| internal("page size"))?;
    let mut leaves = Leaves::new();
    for ops in &doc.pages {
        let mut page = pdf.start_page_with(size.clone());
        let mut surface = page.surface();
        // All rules of a page go into one path, drawn once after the text: one artifact
        // and one stroke set-up per page instead of per table row (about 2,900 in a
        // 1,000-record dossier, a quarter of krilla's drawing operations).
        let mut rules = PathBuilder::new();
        for op in ops {
            match op {
                Op::Rule { x0, x1, y } => {
                    rules.move_to(*x0, *y);
                    rules.line_to(*x1, *y);
                }
                Op::Text { .. } => draw_text_op(&mut surface, faces, op, &mut leaves),
            }
        }
        draw_rules(&mut surface, rules);
        surface.finish();
        page.finish();
    }
    pdf.set_tag_tree(tag_tree(&doc.blocks, leaves));
    pdf.set_outline(outline(&doc.blocks));
    pdf.set_metadata(metadata(doc));
    pdf.finish().map_err(|e| internal(&format!("{e}: {e:?}")))
}

fn draw_text_op(surface: &mut Surface, faces: &[FaceInfo; 2], op: &Op, leaves: &mut Leaves) {
    let Op::Text {
        style,
        x,
        baseline,
        text,
        mark,
    } = op
    else {
        return;
    };
    let tag = match mark {
        Mark::Artifact(kind) => artifact(*kind),
        Mark::Content { .. } => ContentTag::Span(SpanTag::empty()),
    };
    let id = surface.start_tagged(tag);
    if !text.is_empty() {
        draw_text(
            surface,
            &faces[style.face as usize],
            *style,
            *x,
            *baseline,
            text,
        );
    }
    surface.end_tagged();
    if let Mark::Content { block, row, col } = mark {
        leaves.entry((*block, *row, *col)).or_default().push(id);
    }
}

/// The page's rules as one stroked path, tagged as a layout artifact.
fn draw_rules(surface: &mut Surface, rules: PathBuilder) {
    let Some(path) = rules.finish() else {
        return;
    };
    surface.start_tagged(artifact(Artifact::Layout));
    surface.set_fill(None);
    surface.set_stroke(Some(Stroke {
        paint: luma::Color::new(grey(RULE_GREY)).into(),
        width: RULE_W,
        ..Stroke::default()
    }));
    surface.draw_path(&path);
    surface.set_stroke(None);
    surface.end_tagged();
}

fn artifact(kind: Artifact) -> ContentTag<'static> {
    ContentTag::Artifact(tagging::Artifact::with_kind(match kind {
        Artifact::Layout => ArtifactType::Layout,
        Artifact::Footer => ArtifactType::Footer,
        Artifact::Pagination => ArtifactType::PaginationOther,
    }))
}

fn grey(level: f32) -> u8 {
    (level.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One line placed glyph by glyph with the same advances the layout measured.
fn draw_text(
    surface: &mut Surface,
    face: &FaceInfo,
    style: Style,
    x: f32,
    baseline: f32,
    text: &str,
) {
    let glyphs: Vec<KrillaGlyph> = text
        .char_indices()
        .map(|(at, c)| {
            let gid = fonts::glyph(style.face, c);
            KrillaGlyph::new(
                GlyphId::new(u32::from(gid)),
                fonts::advance(style.face, gid),
                0.0,
                0.0,
                0.0,
                at..at + c.len_utf8(),
                None,
            )
        })
        .collect();
    surface.set_stroke(None);
    surface.set_fill(Some(Fill {
        paint: luma::Color::new(grey(style.grey)).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }));
    surface.draw_glyphs(
        Point::from_xy(x, baseline),
        &glyphs,
        face.font.clone(),
        text,
        style.size,
        false,
    );
}

/// The structure tree: the blocks in reading order under the document root.
fn tag_tree(blocks: &[Block], mut leaves: Leaves) -> TagTree {
    let mut take = |block, row, col| leaves.remove(&(block, row, col)).unwrap_or_default();
    let mut tree = TagTree::new().with_lang(Some(LANG.into()));
    for (i, block) in blocks.iter().enumerate() {
        let group = match block {
            Block::Heading { level, text, .. } => {
                let level = NonZeroU16::new(u16::from(*level)).unwrap_or(NonZeroU16::MIN);
                // PDF/UA-1 wants the heading's text as its title (`/T`).
                group(Tag::Hn(level, Some(text.clone())), take(i, 0, 0))
            }
            Block::Paragraph => group(Tag::P, take(i, 0, 0)),
            Block::Table {
                column_headers,
                row_headers,
                rows,
                cols,
            } => {
                let mut table = TagGroup::new(Tag::Table);
                let body_from = usize::from(*column_headers);
                if *column_headers {
                    let cells = (0..*cols)
                        .map(|c| group(Tag::TH(TableHeaderScope::Column), take(i, 0, c)).into())
                        .collect();
                    let tr = TagGroup::with_children(Tag::TR, cells);
                    table.push(TagGroup::with_children(Tag::THead, vec![tr.into()]));
                }
                let body = (body_from..*rows)
                    .map(|r| {
                        let cells = (0..*cols)
                            .map(|c| {
                                let leaves = take(i, r, c);
                                if *row_headers && c == 0 {
                                    group(Tag::TH(TableHeaderScope::Row), leaves).into()
                                } else {
                                    group(Tag::TD, leaves).into()
                                }
                            })
                            .collect();
                        TagGroup::with_children(Tag::TR, cells).into()
                    })
                    .collect();
                table.push(TagGroup::with_children(Tag::TBody, body));
                table
            }
        };
        tree.push(group);
    }
    tree
}

fn group(tag: impl Into<tagging::TagKind>, leaves: Vec<Identifier>) -> TagGroup {
    TagGroup::with_children(tag, leaves.into_iter().map(Into::into).collect())
}

/// Bookmarks from the headings, nested by level (PDF/UA-1 asks for an outline).
fn outline(blocks: &[Block]) -> Outline {
    let headings: Vec<(u8, OutlineNode)> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading {
                level,
                text,
                page,
                y,
            } => Some((
                *level,
                OutlineNode::new(
                    text.clone(),
                    XyzDestination::new(*page, Point::from_xy(MARGIN, *y)),
                ),
            )),
            _ => None,
        })
        .collect();
    let mut outline = Outline::new();
    for node in nest(&mut headings.into_iter().peekable(), 0) {
        outline.push_child(node);
    }
    outline
}

/// Consumes headings deeper than `above` into a list of siblings with their children.
fn nest(
    it: &mut std::iter::Peekable<impl Iterator<Item = (u8, OutlineNode)>>,
    above: u8,
) -> Vec<OutlineNode> {
    let mut out = Vec::new();
    while let Some((level, _)) = it.peek() {
        if *level <= above {
            break;
        }
        let level = *level;
        let Some((_, mut node)) = it.next() else {
            break;
        };
        for child in nest(it, level) {
            node.push_child(child);
        }
        out.push(node);
    }
    out
}

fn metadata(doc: &Document) -> Metadata {
    let mut meta = Metadata::new()
        .title(doc.title.clone())
        .language(LANG.into())
        .creator("eportfolio".into())
        .producer("eportfolio (krilla)".into());
    if !doc.author.is_empty() {
        meta = meta.authors(vec![doc.author.clone()]);
    }
    if let Some(date) = pdf_date(doc.created) {
        meta = meta.creation_date(date);
    }
    meta
}

fn pdf_date(t: chrono::DateTime<chrono::Utc>) -> Option<PdfDateTime> {
    use chrono::{Datelike, Timelike};
    let two = |v: u32| u8::try_from(v).ok();
    Some(
        PdfDateTime::new(u16::try_from(t.year()).ok()?)
            .month(two(t.month())?)
            .day(two(t.day())?)
            .hour(two(t.hour())?)
            .minute(two(t.minute())?)
            .second(two(t.second())?)
            .utc_offset_hour(0)
            .utc_offset_minute(0),
    )
}
