//! A datastore that could not be opened: reads see nothing, writes and health fail, so every
//! publish and play gets `data_store_not_available` and the REST API answers 503.

use crate::store::{Data, Store, StoreError, WriteOp, WriteSeq};

/// A store that could not be opened, with the reason.
#[derive(Debug)]
pub struct FailedStore {
    data: Data,
    why: String,
}

impl FailedStore {
    /// A failed store, with the reason.
    pub fn new(why: String) -> Self {
        FailedStore {
            data: Data::new(),
            why,
        }
    }

    fn error(&self) -> StoreError {
        StoreError::Unavailable(self.why.clone())
    }
}

impl Store for FailedStore {
    fn data(&self) -> &Data {
        &self.data
    }
    fn write(&mut self, _op: WriteOp) -> Result<WriteSeq, StoreError> {
        Err(self.error())
    }
    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(0)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Err(self.error())
    }
    fn health(&self) -> Result<(), StoreError> {
        Err(self.error())
    }
}
