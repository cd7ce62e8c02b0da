//! Property tests of what Kumo parses of ListObjectsV2 itself (s3s parses
//! the rest of every request): the continuation token, and the pages it
//! resumes. Any token: no panic, and only the tokens this server gives out
//! decode. Listing a bucket page by page, with any `max-keys`, prefix and
//! delimiter, returns what one page returns: every key and common prefix
//! once, in order.
//!
//! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

use proptest::prelude::*;

use super::{ListPage, ListPosition, ListQuery, decode_token, encode_token, list_page};

fn position() -> impl Strategy<Value = ListPosition> {
    prop_oneof![
        any::<String>().prop_map(ListPosition::AfterKey),
        any::<String>().prop_map(ListPosition::AfterPrefix),
    ]
}

proptest! {
    #[test]
    fn tokens_round_trip(position in position()) {
        prop_assert_eq!(decode_token(&encode_token(&position)), Some(position));
    }

    #[test]
    fn any_token_decodes_without_panic_and_only_as_one_we_give_out(
        token in prop_oneof![any::<String>(), "[kpx]?[0-9a-fA-Fz]{0,12}"],
    ) {
        if let Some(position) = decode_token(&token) {
            // What decodes is what encoding that position gives (hex case aside).
            prop_assert_eq!(encode_token(&position), token.to_ascii_lowercase());
        }
    }

    #[test]
    fn pages_resumed_by_token_list_every_entry_once(
        keys in proptest::collection::btree_set("[ab/]{1,6}", 0..24),
        prefix in "[ab/]{0,2}",
        delimiter in proptest::option::of(prop_oneof![Just("/"), Just("b"), Just("ab")]),
        max_keys in 1usize..5,
    ) {
        let keys: Vec<String> = keys.into_iter().filter(|key| key.starts_with(&prefix)).collect();
        let page_of = |resume: Option<&ListPosition>, max_keys| {
            list_page(&keys, &ListQuery { prefix: &prefix, delimiter, start_after: None, resume, max_keys })
        };
        let whole = page_of(None, usize::MAX);
        prop_assert_eq!(&whole.next, &None);

        let mut paged = ListPage { keys: Vec::new(), common_prefixes: Vec::new(), next: None };
        let mut resume: Option<ListPosition> = None;
        for _ in 0..=keys.len() + 1 {
            let token = resume.as_ref().map(encode_token);
            let resume_at = token.as_deref().map(|token| decode_token(token).unwrap());
            let page = page_of(resume_at.as_ref(), max_keys);
            prop_assert!(page.keys.len() + page.common_prefixes.len() <= max_keys);
            paged.keys.extend(page.keys);
            paged.common_prefixes.extend(page.common_prefixes);
            resume = page.next;
            if resume.is_none() {
                break;
            }
        }
        prop_assert!(resume.is_none(), "the listing did not end");
        prop_assert_eq!(paged.keys, whole.keys);
        prop_assert_eq!(paged.common_prefixes, whole.common_prefixes);
    }
}
