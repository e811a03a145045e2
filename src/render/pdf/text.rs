//! Text before it is laid out: cleaning what has no glyph, cutting titles, greedy word
//! wrap measured with the same advances the writer draws with.

use super::fonts::{self, text_width, Face};
use super::MAX_TITLE_CHARS;

/// Tabs become spaces; other control characters, private-use characters (PDF/A-2a
/// forbids them) and byte-order marks are dropped: none has a visible glyph.
fn clean(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            '\n' => Some('\n'),
            '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}' => None,
            '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{10FFFF}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

pub(super) fn one_line(text: &str) -> String {
    clean(text)
        .replace('\n', " ")
        .chars()
        .take(MAX_TITLE_CHARS)
        .collect()
}

/// The `ncols` cells of a table row: missing ones empty, extra ones ignored.
pub(super) fn cells(row: &[String], ncols: usize) -> Vec<&str> {
    (0..ncols)
        .map(|i| row.get(i).map_or("", String::as_str))
        .collect()
}

/// Greedy word wrap. Words wider than the line are split between characters (no
/// hyphenation) so long hashes and URLs never run off the page.
pub(super) fn wrap(face: Face, text: &str, size: f32, max_w: f32) -> Vec<String> {
    let text = clean(text);
    let max_w = max_w.max(size);
    let space_w = text_width(face, " ", size);
    let mut lines = Vec::new();
    for hard in text.split('\n') {
        let mut cur = String::new();
        let mut cur_w = 0.0f32;
        for word in hard.split(' ').filter(|w| !w.is_empty()) {
            let ww = text_width(face, word, size);
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
                let cw = fonts::advance(face, fonts::glyph(face, c)) * size;
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
