import Bert
import Foundation

/// Models by hub id: `Hub.modelFolder("sentence-transformers/all-MiniLM-L6-v2")` is a folder
/// every loader of this package takes, found in the Hugging Face cache (filled by Python or by
/// us) or downloaded into it.
public enum Hub {
    /// Which of a model's files a command needs.
    public enum Files: Sendable {
        /// Configuration, tokenizer, sentence-transformers modules and the weights (one format:
        /// safetensors when the model has it, else pytorch_model.bin; sharded or not).
        case model
        /// The same without the weights (tokenizing needs no weights: skip the download).
        case tokenizer
    }

    /// A model folder for `model`: the folder itself when `model` is a path to one; else `model`
    /// is a hub id (`ORG/NAME`) at `revision` (a branch, tag or commit; default `main`), resolved
    /// in the cache at `settings.cache`. With the network allowed, the hub is asked which commit
    /// the revision names and what is missing is downloaded (no file twice); offline
    /// (`HF_HUB_OFFLINE=1`), or when the hub cannot be reached or fails, the cached snapshot is
    /// used.
    public static func modelFolder(
        _ model: String, revision: String? = nil, files: Files = .model,
        settings: HubSettings = .fromEnvironment()
    ) throws -> URL {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isFolder) {
            guard revision == nil || !isFolder.boolValue else {
                throw HubError.notAModel(model, reason: "is a folder here; a revision applies only to a hub id")
            }
            return URL(fileURLWithPath: model)
        }
        let looksLikePath = model.hasPrefix("/") || model.hasPrefix(".") || model.hasPrefix("~")
        guard !looksLikePath, let id = RepoID(model) else {
            throw HubError.notAModel(model, reason: "no such folder (nor is it a Hugging Face model id, ORG/NAME)")
        }
        let revision = revision ?? "main"
        guard isSafeRepoPath(revision), revision.utf8.count <= 255 else {
            throw HubError.notAModel(model, reason: "'\(revision)' is not a revision name")
        }
        return try Resolver(id: id, revision: revision, files: files, settings: settings).folder()
    }
}

/// One resolution of a hub id: the commit, the files it needs, and the downloads.
struct Resolver {
    let id: RepoID
    let revision: String
    let files: Hub.Files
    let settings: HubSettings
    var cache: HubCache { HubCache(root: settings.cache, repo: id) }
    var client: HubClient { HubClient(settings: settings) }

    func folder() throws -> URL {
        let cachedCommit = cache.commit(for: revision)
        if settings.offline {
            if let commit = cachedCommit, let snapshot = complete(commit) { return snapshot }
            throw HubError.notCached(
                id: id.description, revision: revision, cache: settings.cache.path,
                reason: "HF_HUB_OFFLINE is set, so nothing is downloaded; "
                    + (cachedCommit == nil ? "the cache has never seen it" : "files are missing from its snapshot"))
        }
        // Online, the hub's file list says what a snapshot must hold (one that Python filled
        // with a few files only is completed, never taken as whole).
        let listing: (commit: String, files: [String])
        do { listing = try list() } catch let error as HubError {
            // As huggingface_hub: when the hub cannot be reached or fails (anything but "no such
            // model or revision"), the cache answers if it can.
            if case .http(_, 404, _) = error { throw error }
            if let commit = cachedCommit, let snapshot = complete(commit) { return snapshot }
            throw HubError.notCached(
                id: id.description, revision: revision, cache: settings.cache.path, reason: "\(error)")
        }
        try cache.markAsCache()
        let snapshot = cache.snapshot(listing.commit)
        for file in try needed(listing.files, commit: listing.commit) {
            try fetch(file, commit: listing.commit)
        }
        try cache.setRef(revision, to: listing.commit)
        return snapshot
    }

    /// The snapshot of `commit` when it holds what `files` asks for: a tokenizer (tokenizer.json
    /// or vocab.txt), or a config and a weights file whose shards are all there.
    func complete(_ commit: String) -> URL? {
        let snapshot = cache.snapshot(commit)
        let manager = FileManager.default
        func has(_ name: String) -> Bool { manager.fileExists(atPath: snapshot.appendingPathComponent(name).path) }
        if case .tokenizer = files { return has("tokenizer.json") || has("vocab.txt") ? snapshot : nil }
        guard has("config.json") else { return nil }
        guard let weights = ModelWeights.file(in: snapshot) else { return nil }
        if weights.lastPathComponent.hasSuffix(".index.json") {
            guard let shards = try? ModelWeights.shardMap(index: weights) else { return nil }
            for shard in Set(shards.values)
            where !manager.fileExists(atPath: snapshot.appendingPathComponent(shard).path) {
                return nil
            }
        }
        return snapshot
    }

    /// The commit the revision names now and the files of the model there, from the hub's API.
    func list() throws -> (commit: String, files: [String]) {
        // The revision is one path segment ("refs/pr/1" as refs%2Fpr%2F1), as the hub expects.
        var unreserved = CharacterSet.alphanumerics
        unreserved.insert(charactersIn: "-._~")
        let segment = revision.addingPercentEncoding(withAllowedCharacters: unreserved) ?? revision
        guard let url = URL(string: settings.endpoint.absoluteString + "/api/models/\(id)/revision/" + segment) else {
            throw HubError.notAModel(id.description, reason: "'\(revision)' is not a revision name")
        }
        let object = try client.json(url)
        guard let commit = object["sha"] as? String, isCommitHash(commit) else {
            throw HubError.badResponse(url: url.absoluteString, reason: "no commit hash (\"sha\") in the model's info")
        }
        guard let siblings = object["siblings"] as? [[String: Any]] else {
            throw HubError.badResponse(
                url: url.absoluteString, reason: "no file list (\"siblings\") in the model's info")
        }
        let names = siblings.compactMap { $0["rfilename"] as? String }
        if let unsafe = names.first(where: { !isSafeRepoPath($0) }) {
            throw HubError.badResponse(
                url: url.absoluteString, reason: "the file list names '\(unsafe)', not a safe path")
        }
        return (commit, names)
    }

    /// The files of `listing` this package reads: the JSON and text files at the top (config,
    /// tokenizer, sentence-transformers settings) and in sentence-transformers module folders
    /// (`1_Pooling/config.json`), and one weights format (with its shards), not the rest of a
    /// repository (ONNX, TensorFlow, Flax and other copies of the weights).
    func needed(_ listing: [String], commit: String) throws -> [String] {
        let present = Set(listing)
        var chosen = listing.filter { name in
            let parts = name.split(separator: "/")
            guard name.hasSuffix(".json") || name.hasSuffix(".txt") else { return false }
            if ModelWeights.isWeightsFile(name) { return false }
            if parts.count == 1 { return true }
            return parts.count == 2 && parts[0].first?.isNumber == true && parts[0].contains("_")
        }
        guard case .model = files else { return chosen }
        guard let weights = ModelWeights.fileNames.first(where: present.contains) else {
            throw HubError.notAModel(
                id.description,
                reason: "the model at revision \(revision) has no weights this package reads (none of "
                    + ModelWeights.fileNames.joined(separator: ", ") + ")")
        }
        chosen.append(weights)
        if weights.hasSuffix(".index.json") {
            try fetch(weights, commit: commit)
            let index = cache.snapshot(commit).appendingPathComponent(weights)
            let shards: [String: String]
            do { shards = try ModelWeights.shardMap(index: index) } catch {
                throw HubError.badResponse(url: index.path, reason: "\(error)")
            }
            for shard in Set(shards.values).sorted() {
                guard present.contains(shard) else {
                    throw HubError.badResponse(
                        url: index.path, reason: "names the shard \(shard), which the model lacks")
                }
                chosen.append(shard)
            }
        }
        return chosen
    }

    /// One file into the snapshot: nothing when it is there; a link when its blob is; else the
    /// blob is downloaded (under the blob's lock, into its resumable partial file) and linked.
    func fetch(_ file: String, commit: String) throws {
        let target = cache.snapshot(commit).appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: target.path) { return }
        let url = settings.endpoint.appendingPathComponent("\(id)/resolve").appendingPathComponent(commit)
            .appendingPathComponent(file)
        let meta = try client.metadata(url)
        let blob = cache.blob(meta.etag)
        if !FileManager.default.fileExists(atPath: blob.path) {
            try cache.createFolder(cache.blobs)
            try cache.createFolder(cache.lock(meta.etag).deletingLastPathComponent())
            let lock = try FileLock(cache.lock(meta.etag))
            defer { lock.release() }
            // Another process may have fetched it while we waited for the lock.
            if !FileManager.default.fileExists(atPath: blob.path) {
                let partial = cache.partial(meta.etag)
                // A line for each large file; small ones (configs, vocabularies) arrive at once.
                let large = (meta.size ?? Int64.max) >= 1 << 20
                let progress = settings.showProgress && large ? Progress(name: "\(id)/\(file)") : nil
                try client.download(meta.location, to: partial, expectedSize: meta.size, progress: progress)
                guard rename(partial.path, blob.path) == 0 else {
                    throw HubError.cacheAccess(
                        path: blob.path, reason: "cannot move the download into place (\(errnoText()))")
                }
            }
        }
        try cache.link(file, commit: commit, etag: meta.etag)
    }
}

/// An exclusive `flock` on a lock file, as huggingface_hub's filelock takes: two processes never
/// write one blob at once, whichever language they are in.
struct FileLock {
    let descriptor: Int32

    init(_ url: URL) throws {
        descriptor = open(url.path, O_RDWR | O_CREAT, 0o664)  // group-writable: a cache shared by users
        guard descriptor >= 0 else {
            throw HubError.cacheAccess(path: url.path, reason: "cannot open the lock file (\(errnoText()))")
        }
        guard flock(descriptor, LOCK_EX) == 0 else {
            let reason = errnoText()
            close(descriptor)
            throw HubError.cacheAccess(path: url.path, reason: "cannot lock (\(reason))")
        }
    }

    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
