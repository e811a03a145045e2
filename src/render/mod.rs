//! Rendering without external tools: PDF documents (krilla) and charts (SVG, and PNG
//! rendered from that SVG by resvg), with the DejaVu Sans fonts embedded so Swedish text
//! renders the same everywhere.

pub mod chart;
pub mod pdf;

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`), embedded once
/// for both renderers.
static REGULAR_TTF: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));
static BOLD_TTF: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans-Bold.ttf"
));
