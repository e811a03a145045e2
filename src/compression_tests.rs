use super::*;

#[test]
fn only_known_small_bodies_skip_compression() {
    assert!(is_small(BodySize::Sized(1)));
    assert!(is_small(BodySize::Sized(MIN_COMPRESSED_BYTES - 1)));
    assert!(!is_small(BodySize::Sized(MIN_COMPRESSED_BYTES)));
    assert!(!is_small(BodySize::Stream));
    assert!(!is_small(BodySize::None));
}
