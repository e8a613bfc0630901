//! The wasm side: the `theater:actor/files` imports, answered through [`crate::calls`].

use theater_wasm::bindings::theater::actor::files::{DirEntry as WitDirEntry, FileInfo, Host};

use crate::{FileGrant, calls};

theater_wasm::host_view!();

impl Host for View<'_> {
    async fn stat(&mut self, path: String) -> wasmtime::Result<Result<FileInfo, String>> {
        let grant = self.0.grant::<FileGrant>();
        let r = calls::stat(grant.as_deref(), self.0.calls(), &path);
        Ok(self.0.record(r)?.map(|info| FileInfo {
            size: info.size,
            sha256: info.sha256.to_string(),
            content_type: info.content_type,
        }))
    }

    async fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let grant = self.0.grant::<FileGrant>();
        let r = calls::read(grant.as_deref(), self.0.calls(), &path);
        self.0.record(r)
    }

    async fn list_dir(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<WitDirEntry>, String>> {
        let grant = self.0.grant::<FileGrant>();
        let r = calls::list(grant.as_deref(), self.0.calls(), &path);
        Ok(self.0.record(r)?.map(|entries| {
            entries
                .into_iter()
                .map(|e| WitDirEntry {
                    name: e.name,
                    is_dir: e.dir,
                    size: e.size,
                })
                .collect()
        }))
    }

    async fn write(
        &mut self,
        path: String,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let grant = self.0.grant::<FileGrant>();
        let r = calls::write(grant.as_deref(), self.0.calls(), &path, contents);
        self.0.record(r)
    }

    async fn delete(&mut self, path: String) -> wasmtime::Result<Result<(), String>> {
        let grant = self.0.grant::<FileGrant>();
        let r = calls::delete(grant.as_deref(), self.0.calls(), &path);
        self.0.record(r)
    }
}
