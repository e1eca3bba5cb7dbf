//! Arbitrary bytes as a feed page: the consumer's parser and link resolution must never panic,
//! and whatever it accepts must hold only valid entries, in application order. The seed corpus
//! (fuzz/corpus/feed_page) holds feeds from other tools, prefixed namespaces, and documents at
//! the parser's bounds (deep nesting, many entries), so mutations reach those paths.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = url::Url::parse("http://feed.test/order/feed") else {
        return;
    };
    if let Ok(page) = common::consumer::page::parse(&url, data) {
        assert!(!page.feed_id.trim().is_empty());
        assert!(page
            .entries
            .windows(2)
            .all(|w| w[0].updated_us <= w[1].updated_us));
        for entry in &page.entries {
            assert!(!entry.id.trim().is_empty());
            assert!(entry.updated_us > 0);
            if let Ok(link) = &entry.link {
                assert!(link.has_host());
            }
        }
        if let Some(prev) = &page.prev_archive {
            assert!(prev.has_host());
        }
    }
});
