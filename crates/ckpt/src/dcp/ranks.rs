//! A save without collectives (`use_collectives=False`): each rank wrote
//! `__<rank>.metadata`, naming only the items it saved and its own files; together, in rank
//! order, they describe the checkpoint.

use std::collections::{HashMap, HashSet};

use super::metadata::{Item, Metadata, Place};
use crate::error::{Error, Result};

impl Metadata {
    /// The metadata of a checkpoint saved without collectives (`use_collectives=False`):
    /// each rank wrote `__<rank>.metadata`, naming only the items it saved and its own
    /// files; together, in rank order, they describe the checkpoint. A tensor's chunks are
    /// gathered from every rank (a chunk several ranks saved, as a replicated tensor's, is
    /// taken from the first); any other item is the first rank's. Ranks that disagree on a
    /// tensor's dtype or size, or on what an item is, make the checkpoint malformed.
    pub(crate) fn merge(parts: Vec<(String, Metadata)>) -> Result<Metadata> {
        let count = parts.len();
        let mut parts = parts.into_iter();
        let Some((_, mut merged)) = parts.next() else {
            return Err(Error::malformed("no rank's metadata to read"));
        };
        let mut by_fqn: HashMap<String, usize> = merged
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.fqn.clone(), i))
            .collect();
        let mut file_index: HashMap<String, usize> = merged
            .files
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        // Every chunk known so far, by the entry it belongs to, its offsets and sizes.
        let mut known: HashSet<(usize, Vec<usize>, Vec<usize>)> = HashSet::new();
        for (at, entry) in merged.entries.iter().enumerate() {
            if let Item::Tensor { chunks, .. } = &entry.item {
                for c in chunks {
                    known.insert((at, c.offsets.clone(), c.sizes.clone()));
                }
            }
        }
        for (name, part) in parts {
            // Where each of this rank's files is in the merged list.
            let mut remap = Vec::with_capacity(part.files.len());
            for file in part.files {
                let next = merged.files.len();
                let index = *file_index.entry(file.clone()).or_insert(next);
                if index == next {
                    merged.files.push(file);
                }
                remap.push(index);
            }
            let moved = |place: &mut Place| -> Result<()> {
                place.file = *remap
                    .get(place.file)
                    .ok_or_else(|| Error::malformed("an item names a file its rank does not"))?;
                Ok(())
            };
            for mut entry in part.entries {
                match &mut entry.item {
                    Item::Tensor { chunks, .. } => {
                        for chunk in chunks.iter_mut() {
                            moved(&mut chunk.place)?;
                        }
                    }
                    Item::Bytes(place) => moved(place)?,
                }
                let Some(&at) = by_fqn.get(&entry.fqn) else {
                    let at = merged.entries.len();
                    if let Item::Tensor { chunks, .. } = &entry.item {
                        for c in chunks {
                            known.insert((at, c.offsets.clone(), c.sizes.clone()));
                        }
                    }
                    by_fqn.insert(entry.fqn.clone(), at);
                    merged.entries.push(entry);
                    continue;
                };
                let Some(first) = merged.entries.get_mut(at) else {
                    continue;
                };
                let disagree = |what: &str| {
                    Error::malformed(format!(
                        "`{name}` and the first rank's metadata disagree on {what} of `{}`",
                        entry.fqn
                    ))
                    .with_hint("the ranks' metadata files come from different saves")
                };
                match (&mut first.item, entry.item) {
                    (
                        Item::Tensor {
                            dtype,
                            size,
                            chunks,
                        },
                        Item::Tensor {
                            dtype: other_dtype,
                            size: other_size,
                            chunks: others,
                        },
                    ) => {
                        if *dtype != other_dtype || *size != other_size {
                            return Err(disagree("the dtype and size"));
                        }
                        for chunk in others {
                            if known.insert((at, chunk.offsets.clone(), chunk.sizes.clone())) {
                                chunks.push(chunk);
                            }
                        }
                    }
                    (Item::Bytes(_), Item::Bytes(_)) => {}
                    _ => return Err(disagree("the kind")),
                }
            }
            merged.globals.extend(part.globals);
        }
        merged.globals.sort();
        merged.globals.dedup();
        merged.records.push(("ranks".to_owned(), count.to_string()));
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcp::parse::tests::{index, info, metadata, tensor, tensor_in, text};
    use crate::error::ErrorKind;
    use crate::limits::Limits;

    /// One rank's metadata of a save without collectives: its row of `w` (2 x 3) and its
    /// copy of the replicated `r`, in its own file.
    fn rank(rank: i32, rows: i32) -> Metadata {
        let file = format!("__{rank}_0.distcp");
        let bytes = metadata(
            vec![
                (text("w"), tensor_in(&[rank, 0], &[1, 3], &[rows, 3])),
                (text("r"), tensor(&[0], &[2])),
            ],
            vec![
                (index("w", &[rank, 0]), info(&file, 0, 10)),
                (index("r", &[0]), info(&file, 10, 10)),
            ],
        );
        Metadata::parse(&bytes, &Limits::default()).unwrap()
    }

    #[test]
    fn ranks_merge_into_one_metadata() {
        let merged = Metadata::merge(vec![
            ("__0.metadata".to_owned(), rank(0, 2)),
            ("__1.metadata".to_owned(), rank(1, 2)),
        ])
        .unwrap();
        assert_eq!(merged.files(), ["__0_0.distcp", "__1_0.distcp"]);
        let chunks = |fqn: &str| -> Vec<(Vec<usize>, usize)> {
            let entry = merged.entries.iter().find(|e| e.fqn == fqn).unwrap();
            let Item::Tensor { chunks, .. } = &entry.item else {
                panic!("{entry:?}")
            };
            chunks
                .iter()
                .map(|c| (c.offsets.clone(), c.place.file))
                .collect()
        };
        // Each rank's row, from its own file; the replicated tensor once, from rank 0.
        assert_eq!(chunks("w"), [(vec![0, 0], 0), (vec![1, 0], 1)]);
        assert_eq!(chunks("r"), [(vec![0], 0)]);
        assert!(
            merged
                .records
                .contains(&("ranks".to_owned(), "2".to_owned()))
        );
    }

    #[test]
    fn ranks_that_disagree_are_malformed() {
        let error = Metadata::merge(vec![
            ("__0.metadata".to_owned(), rank(0, 2)),
            ("__1.metadata".to_owned(), rank(1, 3)),
        ])
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Malformed);
        assert!(error.message().contains("`__1.metadata`"), "{error}");
        assert!(error.message().contains("`w`"), "{error}");
    }
}
