//! The FMF fuzz target's body run as a plain test (no libFuzzer needed):
//! corpus files and rules, mutated by a fixed pseudo-random generator,
//! must never make discovery panic.

use std::{fs, path::Path};

use atex_fmf::testing::fuzz_one;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fmf-corpus");
    let mut files = Vec::new();
    let mut stack = vec![corpus];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "fmf" || x == "yaml")
                && let Ok(b) = fs::read(&p)
            {
                files.push(b);
            }
        }
    }
    files.sort();
    files.push(b"distro == fedora-40 and arch ~ ^x86 or component is defined".to_vec());
    files.push(b"tag: Tier1, -slow & tier: 1 | /name".to_vec());
    files
}

const TOKENS: &[&[u8]] = &[
    b"\n",
    b": ",
    b"- ",
    b"/",
    b"+",
    b"+<",
    b"-~",
    b"~",
    b"&a ",
    b"*a",
    b"<<: ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"'",
    b"\"",
    b"\t",
    b"adjust:\n  - when: ",
    b"/:\n  inherit: false\n",
    b"test: x\n",
    b" and ",
    b" or ",
    b"==",
    b"~<",
    b"\\",
    b"(",
    b")",
    b"{1,",
    b"---\n",
    b"!!str ",
    b"\xEF\xBB\xBF",
    b"\xFF",
];

#[test]
fn fuzz_body_never_panics() {
    let seeds = seeds();
    assert!(!seeds.is_empty());
    let mut rng = Rng(0x5EED_F00D_CAFE_BEEF);
    let iterations = std::env::var("ATEX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    for _ in 0..iterations {
        let mut input = Vec::new();
        for part in 0..6 {
            if part > 0 {
                input.push(0xFF);
            }
            let mut piece = seeds[rng.below(seeds.len())].clone();
            for _ in 0..rng.below(8) {
                let at = rng.below(piece.len() + 1);
                match rng.below(3) {
                    0 => piece
                        .splice(at..at, TOKENS[rng.below(TOKENS.len())].iter().copied())
                        .for_each(drop),
                    1 if at < piece.len() => {
                        piece.remove(at);
                    }
                    _ if at < piece.len() => piece[at] = rng.next() as u8,
                    _ => {}
                }
            }
            input.extend(piece);
        }
        fuzz_one(&input);
    }
}
