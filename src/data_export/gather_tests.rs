use super::*;

#[test]
fn an_attachment_name_is_one_harmless_path_component() {
    assert_eq!(archive_name("kursintyg.pdf"), "kursintyg.pdf");
    assert_eq!(
        archive_name("Försäkring åtgärd.pdf"),
        "Försäkring åtgärd.pdf"
    );
    assert_eq!(archive_name(".."), "attachment");
    assert_eq!(archive_name("."), "attachment");
    assert_eq!(archive_name("  "), "attachment");
    assert_eq!(archive_name("a/../b"), "a_.._b");
    assert_eq!(archive_name("a\\b"), "a_b");
}
