import BertHub
import Foundation
import Testing

// Models by hub id: the Hugging Face cache as huggingface_hub lays it out (one filled by
// huggingface_hub itself, one built here), and downloads from scripts/fake_hub.py on 127.0.0.1
// (the machines here cannot reach huggingface.co), through the `bert` executable.

private let repoID = "sentence-transformers/all-MiniLM-L6-v2"
private let python = ModelFixtures.packageRoot.appendingPathComponent(".cache/venv/bin/python")
/// The cache scripts/make_hub_cache.py filled with huggingface_hub (HF_HOME of it: hf-home).
private let pythonHome = ModelFixtures.packageRoot.appendingPathComponent(".cache/fixtures/hf-home")
private let pythonRepo = pythonHome.appendingPathComponent("hub/models--sentence-transformers--all-MiniLM-L6-v2")
private let sentences = Data(
    """
    A man is playing a guitar on stage.
    The stock market fell sharply today, as investors sold their shares.
    Ein Mann spielt Gitarre.

    """.utf8)

private func scratch(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bert-hub-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// scripts/fake_hub.py serving model folders as ORG/NAME, on a free port.
private final class FakeHub {
    let process = Process()
    let root: URL
    let log: URL
    var port = 0
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init(_ models: [String: URL], arguments: [String] = []) throws {
        root = try scratch("served")
        log = root.appendingPathComponent("requests.log")
        for (id, folder) in models {
            let link = root.appendingPathComponent(id)
            try FileManager.default.createDirectory(
                at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: folder)
        }
        process.executableURL = python
        let script = ModelFixtures.packageRoot.appendingPathComponent("scripts/fake_hub.py").path
        process.arguments = [script, "--root", root.path, "--log", log.path] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        // "PORT <n>" once it listens.
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        port = Int(String(decoding: line, as: UTF8.self).split(separator: " ").last ?? "") ?? 0
    }

    /// The requests so far, one "METHOD PATH RANGE AUTH" line each.
    func requests() -> [String] {
        ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: a child of the test runner may have SIGTERM blocked.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: root)
    }

    deinit { stop() }
}

private func embed(_ model: String, _ environment: [String: String] = [:], extra: [String] = []) throws
    -> BertCLIResult
{
    try runBertCLI(["embed", "--model", model] + extra, stdin: sentences, environment: environment)
}

/// Every entry of a snapshot folder: relative path → symlink destination (as written).
private func links(in snapshot: URL) throws -> [String: String] {
    var result: [String: String] = [:]
    let manager = FileManager.default
    guard let walker = manager.enumerator(atPath: snapshot.path) else { return [:] }
    for case let path as String in walker {
        let full = snapshot.appendingPathComponent(path).path
        if let destination = try? manager.destinationOfSymbolicLink(atPath: full) { result[path] = destination }
    }
    return result
}

@Suite(
    .enabled(
        if: ModelFixtures.required
            || (ModelFixtures.haveMiniLM && FileManager.default.fileExists(atPath: pythonRepo.path)
                && FileManager.default.isExecutableFile(atPath: python.path)
                && FileManager.default.isExecutableFile(atPath: bertExecutable().path))
    ),
    .serialized)
struct HubCacheTests {
    let folderOutput: String

    init() throws {
        let r = try embed(ModelFixtures.miniLMFolder.path)
        try #require(r.status == 0, "\(r.stderr)")
        folderOutput = r.stdout
    }

    @Test func aCacheFilledByHuggingFaceHubServesTheModelOffline() throws {
        let commit = try String(contentsOf: pythonRepo.appendingPathComponent("refs/main"), encoding: .utf8)
        for environment in [
            ["HF_HOME": pythonHome.path, "HF_HUB_OFFLINE": "1"],
            ["HF_HUB_CACHE": pythonHome.appendingPathComponent("hub").path, "HF_HUB_OFFLINE": "1"],
        ] {
            let r = try embed(repoID, environment)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == folderOutput)
            let pinned = try embed(repoID, environment, extra: ["--revision", commit])
            #expect(pinned.status == 0 && pinned.stdout == folderOutput, "\(pinned.stderr)")
        }
        // A hub that cannot be reached (nothing listens on port 9) leaves the cache to answer.
        let unreachable = try embed(repoID, ["HF_HOME": pythonHome.path, "HF_ENDPOINT": "http://127.0.0.1:9"])
        #expect(unreachable.status == 0 && unreachable.stdout == folderOutput, "\(unreachable.stderr)")
        // The library resolves the same snapshot.
        let settings = HubSettings(
            cache: pythonHome.appendingPathComponent("hub"), endpoint: URL(string: "http://127.0.0.1:9")!,
            offline: true)
        let folder = try Hub.modelFolder(repoID, settings: settings)
        #expect(
            folder.standardizedFileURL == pythonRepo.appendingPathComponent("snapshots/\(commit)").standardizedFileURL)
    }

    @Test func aRevisionOrModelTheCacheLacksIsAClearError() throws {
        let offline = ["HF_HOME": pythonHome.path, "HF_HUB_OFFLINE": "1"]
        let branch = try embed(repoID, offline, extra: ["--revision", "v2"])
        #expect(branch.status == 1 && !branch.crashed)
        #expect(branch.stderr.contains("revision v2") && branch.stderr.contains("HF_HUB_OFFLINE"), "\(branch.stderr)")
        let empty = try scratch("empty")
        defer { try? FileManager.default.removeItem(at: empty) }
        let missing = try embed(
            "someone/no-such-model", ["HF_HUB_CACHE": empty.path, "HF_ENDPOINT": "http://127.0.0.1:9"])
        #expect(missing.status == 1 && !missing.crashed)
        #expect(
            missing.stderr.contains("not in the Hugging Face cache at \(empty.path)")
                && missing.stderr.contains("cannot be reached"), "\(missing.stderr)")
        let notAnID = try embed("./no/such/folder", ["HF_HUB_CACHE": empty.path])
        #expect(notAnID.status == 1 && notAnID.stderr.contains("no such folder"), "\(notAnID.stderr)")
        // A revision beside a folder is a mistake, not ignored.
        let folderWithRevision = try embed(ModelFixtures.miniLMFolder.path, extra: ["--revision", "main"])
        #expect(folderWithRevision.status == 1 && folderWithRevision.stderr.contains("a revision applies only"))
    }

    @Test func aCacheBuiltHereWithBlobSymlinksServesTheModel() throws {
        // The layout by hand, as huggingface_hub writes it: blobs named by ETag, relative links.
        let source = ModelFixtures.url("tiny-pretraining")
        let cache = try scratch("built")
        defer { try? FileManager.default.removeItem(at: cache) }
        let repo = cache.appendingPathComponent("models--someone--tiny-bert")
        let commit = String(repeating: "ab", count: 20)
        let snapshot = repo.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(
            at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        for (name, blob) in [("config.json", "0123abcd"), ("model.safetensors", "4567ef01")] {
            try FileManager.default.copyItem(
                at: source.appendingPathComponent(name), to: repo.appendingPathComponent("blobs/\(blob)"))
            try FileManager.default.createSymbolicLink(
                atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: "../../blobs/\(blob)")
        }
        try Data(commit.utf8).write(to: repo.appendingPathComponent("refs/main"))
        let fromCache = try runBertCLI(
            ["params", "--model", "someone/tiny-bert", "--json"],
            environment: ["HF_HUB_CACHE": cache.path, "HF_HUB_OFFLINE": "1"])
        let fromFolder = try runBertCLI(["params", "--model", source.path, "--json"])
        #expect(fromCache.status == 0, "\(fromCache.stderr)")
        // The same counts; only the source (the model as given) differs.
        func withoutSource(_ json: String) throws -> Data {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            object["source"] = nil
            return try JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
        }
        #expect(try withoutSource(fromCache.stdout) == withoutSource(fromFolder.stdout))
    }

    @Test func aDownloadFillsAnEmptyCacheOnceAsHuggingFaceHubWould() throws {
        let hub = try FakeHub([repoID: ModelFixtures.miniLMFolder], arguments: ["--token", "hf_test_token"])
        defer { hub.stop() }
        let home = try scratch("home")
        defer { try? FileManager.default.removeItem(at: home) }
        let environment = ["HF_HOME": home.path, "HF_ENDPOINT": hub.endpoint]

        // A model that needs a token, without one: the hub's 401, explained.
        let refused = try embed(repoID, environment)
        #expect(refused.status == 1 && refused.stderr.contains("HTTP 401") && refused.stderr.contains("HF_TOKEN"))

        var withToken = environment
        withToken["HF_TOKEN"] = "hf_test_token"
        let first = try embed(repoID, withToken)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == folderOutput)
        #expect(first.stderr.contains("downloaded \(repoID)/model.safetensors"), "\(first.stderr)")
        // The token goes to the hub, never to the host its redirect names (the CDN).
        let requests = hub.requests()
        #expect(requests.contains { $0.hasPrefix("GET /lfs/") })
        #expect(requests.filter { $0.hasPrefix("GET /lfs/") }.allSatisfy { $0.hasSuffix(" -") })
        #expect(requests.filter { $0.contains("/resolve/") }.allSatisfy { $0.hasSuffix(" auth") })
        // No other copy of the weights, nor the README, is fetched.
        #expect(!requests.contains { $0.contains("README.md") })

        // The same layout as huggingface_hub's: same commit, same links, same blob names.
        let ours = home.appendingPathComponent("hub/models--sentence-transformers--all-MiniLM-L6-v2")
        let commit = try String(contentsOf: pythonRepo.appendingPathComponent("refs/main"), encoding: .utf8)
        #expect(try String(contentsOf: ours.appendingPathComponent("refs/main"), encoding: .utf8) == commit)
        let theirLinks = try links(in: pythonRepo.appendingPathComponent("snapshots/\(commit)"))
        let ourLinks = try links(in: ours.appendingPathComponent("snapshots/\(commit)"))
        #expect(!ourLinks.isEmpty)
        for (path, destination) in ourLinks { #expect(theirLinks[path] == destination, "\(path)") }
        #expect(ourLinks["model.safetensors"] != nil && ourLinks["1_Pooling/config.json"] != nil)

        // A second run downloads nothing: one question to the hub (which commit is main now).
        let before = hub.requests().count
        let second = try embed(repoID, withToken)
        #expect(second.status == 0 && second.stdout == folderOutput)
        let after = Array(hub.requests().dropFirst(before))
        #expect(
            after.count == 1 && after.first?.hasPrefix("GET /api/models/\(repoID)/revision/main") == true, "\(after)")

        // And huggingface_hub reads the cache we filled, offline.
        let reader = Process()
        reader.executableURL = python
        reader.arguments = [
            "-c",
            "import huggingface_hub as h; print(h.hf_hub_download('\(repoID)', 'model.safetensors', "
                + "local_files_only=True))",
        ]
        var readerEnvironment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HF_") }
        readerEnvironment["HF_HOME"] = home.path
        readerEnvironment["HF_HUB_OFFLINE"] = "1"
        reader.environment = readerEnvironment
        let out = Pipe()
        reader.standardOutput = out
        try reader.run()
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        reader.waitUntilExit()
        #expect(reader.terminationStatus == 0)
        #expect(printed.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix(ours.path + "/snapshots/\(commit)/"))
    }

    @Test func anInterruptedDownloadResumesFromItsPartialFile() throws {
        let hub = try FakeHub([repoID: ModelFixtures.miniLMFolder], arguments: ["--cut-after", "20000000"])
        defer { hub.stop() }
        let cache = try scratch("resume")
        defer { try? FileManager.default.removeItem(at: cache) }
        let environment = ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint]
        let cut = try embed(repoID, environment)
        #expect(cut.status == 1 && !cut.crashed)
        #expect(
            cut.stderr.contains("stopped at 20000000 of 90868376 bytes") && cut.stderr.contains("resumes"),
            "\(cut.stderr)")
        let blobs = cache.appendingPathComponent("models--sentence-transformers--all-MiniLM-L6-v2/blobs")
        let partial = try FileManager.default.contentsOfDirectory(atPath: blobs.path).filter {
            $0.hasSuffix(".incomplete")
        }
        #expect(partial.count == 1)
        let resumed = try embed(repoID, environment)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout == folderOutput)
        #expect(resumed.stderr.contains("resuming at 20.0 MB"))
        #expect(hub.requests().contains { $0.hasPrefix("GET /lfs/") && $0.contains("bytes=20000000-") })
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: blobs.path).allSatisfy { !$0.hasSuffix(".incomplete") })
    }

    @Test func aSnapshotPythonFilledInPartIsCompletedNotTakenAsWhole() throws {
        // transformers' AutoModel fetches config and weights only: the sentence-transformers files
        // (modules.json: pooling, normalisation) are then missing, and must be fetched online.
        let hub = try FakeHub([repoID: ModelFixtures.miniLMFolder])
        defer { hub.stop() }
        let home = try scratch("partial")
        defer { try? FileManager.default.removeItem(at: home) }
        let copy = home.appendingPathComponent("hub")
        try FileManager.default.copyItem(at: pythonHome.appendingPathComponent("hub"), to: copy)
        let commit = try String(contentsOf: pythonRepo.appendingPathComponent("refs/main"), encoding: .utf8)
        let snapshot = copy.appendingPathComponent(
            "models--sentence-transformers--all-MiniLM-L6-v2/snapshots/\(commit)")
        let link = snapshot.appendingPathComponent("modules.json")
        let blob = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
        try FileManager.default.removeItem(at: snapshot.appendingPathComponent(blob).standardizedFileURL)
        try FileManager.default.removeItem(at: link)
        let r = try embed(
            repoID, ["HF_HUB_CACHE": copy.path, "HF_ENDPOINT": hub.endpoint], extra: ["--revision", commit])
        #expect(r.status == 0 && r.stdout == folderOutput, "\(r.stderr)")
        let fetched = hub.requests().filter { $0.hasPrefix("GET /") && !$0.hasPrefix("GET /api/") }
        #expect(fetched.count == 1 && fetched[0].contains("/modules.json"), "\(fetched)")
    }

    @Test func aRenamedModelIsFollowedToItsNewName() throws {
        let hub = try FakeHub(
            [repoID: ModelFixtures.miniLMFolder], arguments: ["--alias", "old-org/old-name=\(repoID)"])
        defer { hub.stop() }
        let cache = try scratch("renamed")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try embed("old-org/old-name", ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint])
        #expect(r.status == 0 && r.stdout == folderOutput, "\(r.stderr)")
        // Cached under the name asked for, as huggingface_hub does.
        #expect(
            FileManager.default.fileExists(
                atPath: cache.appendingPathComponent("models--old-org--old-name/refs/main").path))
    }

    @Test func aServerSendingMoreThanTheFilesSizeIsStopped() throws {
        let hub = try FakeHub([repoID: ModelFixtures.miniLMFolder], arguments: ["--size-error", "-1000000"])
        defer { hub.stop() }
        let cache = try scratch("oversized")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try embed(repoID, ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint])
        #expect(r.status == 1 && !r.crashed && r.stderr.contains("more than the file's 89868376 bytes"), "\(r.stderr)")
        let blobs = cache.appendingPathComponent("models--sentence-transformers--all-MiniLM-L6-v2/blobs")
        let left = try FileManager.default.contentsOfDirectory(atPath: blobs.path)
        #expect(!left.contains { $0.hasPrefix("53aa51172d") }, "\(left)")
    }

    @Test func tokenizingFetchesNoWeights() throws {
        let hub = try FakeHub([repoID: ModelFixtures.miniLMFolder])
        defer { hub.stop() }
        let cache = try scratch("tokenize")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try runBertCLI(
            ["tokenize", "--model", repoID], stdin: sentences,
            environment: ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint])
        let local = try runBertCLI(["tokenize", "--model", ModelFixtures.miniLMFolder.path], stdin: sentences)
        #expect(r.status == 0 && r.stdout == local.stdout && !local.stdout.isEmpty, "\(r.stderr)")
        #expect(!hub.requests().contains { $0.contains("model.safetensors") || $0.hasPrefix("GET /lfs/") })
    }

    @Test func aListingThatNamesAPathOutsideTheCacheIsRefused() throws {
        let hub = try FakeHub(
            [repoID: ModelFixtures.miniLMFolder], arguments: ["--extra-sibling", "../../../escape.json"])
        defer { hub.stop() }
        let cache = try scratch("hostile")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try embed(repoID, ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint])
        #expect(r.status == 1 && !r.crashed && r.stderr.contains("not a safe path"), "\(r.stderr)")
        #expect(
            !FileManager.default.fileExists(
                atPath: cache.deletingLastPathComponent().appendingPathComponent("escape.json").path))
    }
}

struct HubSettingsTests {
    @Test func theCacheFolderFollowsHuggingFaceHubsPrecedence() {
        let home = ["HOME": "/home/u"]
        #expect(HubSettings.fromEnvironment(home).cache.path == "/home/u/.cache/huggingface/hub")
        #expect(
            HubSettings.fromEnvironment(home.merging(["XDG_CACHE_HOME": "/x"]) { $1 }).cache.path
                == "/x/huggingface/hub")
        #expect(
            HubSettings.fromEnvironment(home.merging(["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]) { $1 }).cache.path
                == "/h/hub")
        #expect(
            HubSettings.fromEnvironment(home.merging(["HF_HOME": "/h", "HF_HUB_CACHE": "/c"]) { $1 }).cache.path == "/c"
        )
        #expect(HubSettings.fromEnvironment(home.merging(["HF_HOME": "~/hf"]) { $1 }).cache.path == "/home/u/hf/hub")
        #expect(HubSettings.fromEnvironment(home).endpoint.absoluteString == "https://huggingface.co")
        #expect(
            HubSettings.fromEnvironment(home.merging(["HF_ENDPOINT": "http://mirror:8080/"]) { $1 }).endpoint
                .absoluteString == "http://mirror:8080")
        for (value, offline) in [("1", true), ("TRUE", true), ("yes", true), ("0", false), ("", false)] {
            #expect(HubSettings.fromEnvironment(home.merging(["HF_HUB_OFFLINE": value]) { $1 }).offline == offline)
        }
    }

    @Test func theTokenComesFromTheEnvironmentElseTheLoginFile() throws {
        let hfHome = try scratch("token")
        defer { try? FileManager.default.removeItem(at: hfHome) }
        #expect(HubSettings.fromEnvironment(["HF_HOME": hfHome.path]).token == nil)
        try Data("hf_from_file\n".utf8).write(to: hfHome.appendingPathComponent("token"))
        #expect(HubSettings.fromEnvironment(["HF_HOME": hfHome.path]).token == "hf_from_file")
        #expect(HubSettings.fromEnvironment(["HF_HOME": hfHome.path, "HF_TOKEN": "hf_env"]).token == "hf_env")
    }

    @Test func hubIDsAreCheckedAsHuggingFaceHubChecksThem() {
        for good in ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2", "a_b/c.d"] {
            #expect(RepoID(good)?.description == good)
        }
        for bad in [
            "", "a/b/c", "a--b/c", "../x", "a/..", "-a/b", "a/b.", "a b/c", "a/", "/a",
            String(repeating: "x", count: 97),
        ] {
            #expect(RepoID(bad) == nil, "\(bad)")
        }
        #expect(
            RepoID("sentence-transformers/all-MiniLM-L6-v2")?.cacheFolderName
                == "models--sentence-transformers--all-MiniLM-L6-v2")
    }
}
