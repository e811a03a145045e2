//! The two DejaVu Sans faces as the PDF writer needs them: krilla fonts to draw with, and
//! glyph ids plus advance widths to lay lines out. The metrics come from skrifa, the font
//! parser krilla itself uses, so that line widths measured here are exactly the widths
//! krilla draws.

use std::sync::OnceLock;

use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, GlyphId, MetadataProvider};

use crate::render::{BOLD_TTF, REGULAR_TTF};

/// Characters below this are looked up once per process into a table: body text is
/// dominated by Latin, punctuation and the General Punctuation block, and the cmap lookup
/// is a binary search.
const FAST_MAP_LIMIT: usize = 0x2200;

/// Advance assumed when the embedded font cannot be read (then `finish` fails anyway;
/// the layout just needs a number).
const FALLBACK_ADVANCE: f32 = 0.6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Face {
    Regular = 0,
    Bold = 1,
}

/// Per-process facts about one face, derived once so that a document never re-parses
/// the font.
pub(super) struct FaceInfo {
    pub(super) font: krilla::text::Font,
    charmap: Charmap<'static>,
    /// Advance widths in em, indexed by glyph id.
    advances: Vec<f32>,
    fast_map: Vec<u16>,
    question: u16,
}

impl FaceInfo {
    fn load(data: &'static [u8]) -> Option<FaceInfo> {
        let parsed = FontRef::new(data).ok()?;
        let upem = f32::from(
            parsed
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        let metrics = parsed.glyph_metrics(Size::unscaled(), LocationRef::default());
        let advances = (0..metrics.glyph_count())
            .map(|g| metrics.advance_width(GlyphId::new(g)).unwrap_or(0.0) / upem.max(1.0))
            .collect();
        let charmap = parsed.charmap();
        let gid = |c: char| {
            charmap
                .map(c)
                .map_or(0, |g| u16::try_from(g.to_u32()).unwrap_or(0))
        };
        let fast_map = (0..FAST_MAP_LIMIT)
            .map(|u| {
                u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .map_or(0, gid)
            })
            .collect();
        let question = gid('?');
        let font = krilla::text::Font::new(krilla::Data::from(data), 0)?;
        Some(FaceInfo {
            font,
            charmap,
            advances,
            fast_map,
            question,
        })
    }

    /// Glyph id of a character, 0 when the font lacks it.
    fn lookup(&self, c: char) -> u16 {
        match self.fast_map.get(c as usize) {
            Some(g) => *g,
            None => self
                .charmap
                .map(c)
                .map_or(0, |g| u16::try_from(g.to_u32()).unwrap_or(0)),
        }
    }
}

/// Both faces, or `None` when the embedded files cannot be parsed (a build defect that
/// `Document::finish` reports as an internal error instead of panicking).
pub(super) fn faces() -> Option<&'static [FaceInfo; 2]> {
    static FACES: OnceLock<Option<[FaceInfo; 2]>> = OnceLock::new();
    FACES
        .get_or_init(|| Some([FaceInfo::load(REGULAR_TTF)?, FaceInfo::load(BOLD_TTF)?]))
        .as_ref()
}

/// Glyph id to draw for `c`: characters the font lacks are shown as '?' so that a reader
/// sees an obvious marker (and PDF/A forbids referencing the .notdef glyph).
pub(super) fn glyph(face: Face, c: char) -> u16 {
    faces().map_or(0, |f| {
        let info = &f[face as usize];
        match info.lookup(c) {
            0 => info.question,
            g => g,
        }
    })
}

/// `text` as it will be shown: characters without a glyph replaced by '?', so that the
/// text a reader copies is the text they see.
pub(super) fn visible(face: Face, text: &str) -> String {
    let Some(f) = faces() else {
        return text.to_string();
    };
    let info = &f[face as usize];
    text.chars()
        .map(|c| if info.lookup(c) == 0 { '?' } else { c })
        .collect()
}

/// Advance of one glyph in em.
pub(super) fn advance(face: Face, gid: u16) -> f32 {
    faces()
        .and_then(|f| f[face as usize].advances.get(usize::from(gid)).copied())
        .unwrap_or(FALLBACK_ADVANCE)
}

/// Width of a line of text in points (no kerning: the writer places glyphs by advance).
pub(super) fn text_width(face: Face, text: &str, size: f32) -> f32 {
    text.chars()
        .map(|c| advance(face, glyph(face, c)))
        .sum::<f32>()
        * size
}
