// Built with the MPI trait only (scripts/test.sh's first run): `bert pretrain` and `bert finetune`
// under `mpirun -np 2` against one process, a rank killed mid-run, ranks that disagree.
#if MPI
    import Bert
    import BertCompute
    import Foundation
    import Testing

    @Suite(.serialized, .enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the model and corpus"))
    struct MPIJobTests {
        static let mpirun: URL? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].map { URL(fileURLWithPath: $0) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }

        /// Two ranks on this machine (oversubscribed: it may have fewer cores than ranks).
        func mpirun(_ commands: [[String]], timeout: Double = 240) throws -> BertCLIResult {
            let launcher = try #require(Self.mpirun, "the MPI build's tests need mpirun (apt-get install openmpi-bin)")
            var args = ["--oversubscribe"]
            for (i, c) in commands.enumerated() {
                if i > 0 { args.append(":") }
                args += ["-np", commands.count == 1 ? "2" : "1", bertExecutable().path] + c
            }
            return try runBertCLI(
                args, timeout: timeout,
                environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"],
                executable: launcher)
        }

        func root(_ name: String) throws -> URL {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }

        func corpus(in root: URL) throws -> URL {
            let text = try String(
                contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
            let url = root.appendingPathComponent("corpus.txt")
            try String(text.prefix(300_000)).write(to: url, atomically: true, encoding: .utf8)
            return url
        }

        /// The first `n` lines of .cache/corpus/en.txt with 5 words or more.
        func corpusLines(_ n: Int) throws -> [String] {
            let text = try String(
                contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
            return Array(
                text.split(separator: "\n").lazy.map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { $0.split(separator: " ").count >= 5 && !$0.contains("\t") }.prefix(n))
        }

        func pretrain(_ corpus: URL, out: URL, steps: Int, extra: [String] = []) -> [String] {
            [
                "pretrain", "--corpus", corpus.path, "--preset", "tiny", "--learn-vocab", "1500", "--out", out.path,
                "--steps", "\(steps)", "--batch-size", "16", "--seq-len", "48", "--warmup", "2", "--lr", "1e-3",
                "--eval-every", "5", "--log-every", "1", "--shards", "3", "--checkpoint-every", "5",
            ] + extra
        }

        /// Largest difference over the largest value, tensor by tensor, at least 0.01 (BERT's weights are
        /// of the order of its initializer_range, 0.02: a bias near zero is compared at that scale,
        /// where its rounding differences, 1e-8, are). Biases that
        /// shift every score a softmax sees alike are left out: the attention key biases, and
        /// `also` (question answering's span-logit bias, multiple choice's score bias). Softmax does
        /// not change with them, so their gradient is rounding noise (1e-10), which Adam scales up to
        /// steps of the learning rate's size; one process and two ranks round differently, and those
        /// values (1e-7 to 1e-6) wander apart.
        func weightDifference(_ a: URL, _ b: URL, also: [String] = []) throws -> Float {
            let x = try SafeTensorsFile(contentsOf: a.appendingPathComponent("model.safetensors"))
            let y = try SafeTensorsFile(contentsOf: b.appendingPathComponent("model.safetensors"))
            var worst: Float = 0
            #expect(x.tensors.map(\.name).sorted() == y.tensors.map(\.name).sorted())
            for name in x.tensors.map(\.name) where !name.hasSuffix("attention.self.key.bias") && !also.contains(name) {
                let u = try x.floats(name), v = try y.floats(name)
                let scale = max(u.map(abs).max() ?? 0, 1e-2)
                worst = max(worst, (zip(u, v).map { abs($0 - $1) }.max() ?? 0) / scale)
            }
            return worst
        }

        /// The loss columns of training_curve.csv, row by row.
        func curve(_ folder: URL) throws -> [[Double]] {
            try String(contentsOf: folder.appendingPathComponent("training_curve.csv"), encoding: .utf8)
                .split(separator: "\n").dropFirst()
                .map { $0.split(separator: ",", omittingEmptySubsequences: false).prefix(5).compactMap { Double($0) } }
        }

        func expectSameCurve(_ a: URL, _ b: URL) throws {
            let x = try curve(a), y = try curve(b)
            #expect(x.count == y.count && !x.isEmpty)
            for (r, s) in zip(x, y) {
                #expect(r.count == s.count)
                for (u, v) in zip(r, s) { #expect(abs(u - v) <= 1e-5 * max(abs(u), 1e-3), "\(r) vs \(s)") }
            }
        }

        @Test func pretrainingOnTwoRanksEqualsOneProcess() throws {
            let dir = try root("mpi-pretrain")
            defer { try? FileManager.default.removeItem(at: dir) }
            let text = try corpus(in: dir)
            let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
            let whole = dir.appendingPathComponent("whole")
            let alone = try runBertCLI(pretrain(text, out: one, steps: 10, extra: ["--threads", "1"]))
            #expect(alone.status == 0, "\(alone.stderr)")
            #expect(alone.stderr.contains("1 process x 1 thread"))
            let job = try mpirun([pretrain(text, out: two, steps: 10)])
            #expect(job.status == 0, "\(job.stderr)")
            #expect(job.stderr.contains("bert pretrain: 2 ranks x 1 thread"), "\(job.stderr)")
            // Rank 0 alone prints progress.
            #expect(job.stdout.components(separatedBy: "step 10/10").count == 2, "\(job.stdout)")
            try expectSameCurve(one, two)
            #expect(try weightDifference(one, two) < 1e-5)
            // One sum after the backward gives the same model as the bucketed sums.
            let after = try mpirun([
                pretrain(text, out: whole, steps: 10, extra: ["--gradient-sums", "after-backward"])
            ])
            #expect(after.status == 0, "\(after.stderr)")
            #expect(after.stderr.contains("gradient sums (after-backward)"))
            #expect(try weightDifference(one, whole) < 1e-5)
        }

        /// Fine-tuning with dropout on (MiniLM's 0.1): sentence classification (shares weighted by
        /// their rows), token tagging (by their labelled tokens), question answering (windows) and
        /// multiple choice (questions of 3 endings: rows of the dropout), 2 ranks against one process.
        @Test(arguments: ["classify", "tag", "qa", "choice"])
        func fineTuningOnTwoRanksEqualsOneProcess(_ task: String) throws {
            let dir = try root("mpi-finetune")
            defer { try? FileManager.default.removeItem(at: dir) }
            let suffix = ["tag": "txt", "qa": "json", "choice": "jsonl"][task] ?? "csv"
            let train = dir.appendingPathComponent("train.\(suffix)")
            let validation = dir.appendingPathComponent("validation.\(suffix)")
            if task == "qa" {
                // 9 questions on 3 contexts, one in 3 unanswerable; the short windows make several per context.
                var paragraphs: [[String: Any]] = []
                for k in 0..<3 {
                    let context =
                        "Tower \(k) was finished in \(1889 + k) after two years of work. It stands in Paris, on the "
                        + "Champ de Mars, beside the river Seine, and draws \(k + 5) million visitors a year."
                    func at(_ s: String) -> Int {
                        context.unicodeScalars.count
                            - (context.range(of: s).map { context[$0.lowerBound...].unicodeScalars.count } ?? 0)
                    }
                    let year = "\(1889 + k)"
                    let qas: [[String: Any]] = [
                        ["id": "\(k)a", "question": "When?", "answers": [["text": year, "answer_start": at(year)]]],
                        [
                            "id": "\(k)b", "question": "Where does it stand?",
                            "answers": [["text": "Paris", "answer_start": at("Paris")]],
                        ],
                        ["id": "\(k)c", "question": "Who painted it?", "answers": [], "is_impossible": true],
                    ]
                    paragraphs.append(["context": context, "qas": qas])
                }
                let json = try JSONSerialization.data(withJSONObject: ["data": [["paragraphs": paragraphs]]])
                try json.write(to: train)
                try json.write(to: validation)
            } else if task == "choice" {
                var lines = ""
                // Every fourth question has a fourth ending: shares and batches with mixed ending counts.
                for i in 0..<9 {
                    let fourth = i % 4 == 1 ? ", \"slept.\"" : ""
                    lines +=
                        "{\"context\": \"It rained all day \(i), so Sam\", \"endings\": [\"took an umbrella.\", "
                        + "\"went swimming in the lake \(i) times.\", \"ate the sun.\"\(fourth)], \"label\": \(i % 3)}\n"
                }
                try lines.write(to: train, atomically: true, encoding: .utf8)
                try lines.write(to: validation, atomically: true, encoding: .utf8)
            } else if task == "tag" {
                // 40 sentences of the prepared English corpus, each word tagged by its shape (only
                // .cache/corpus comes with the test data): a capitalised word B-CAP, a number
                // B-NUM, the rest O; the first 12 also validate.
                var text = ""
                for line in try corpusLines(40) {
                    for word in line.split(separator: " ").prefix(30) {
                        let tag = word.first!.isUppercase ? "B-CAP" : word.first!.isNumber ? "B-NUM" : "O"
                        text += "\(word)\t\(tag)\n"
                    }
                    text += "\n"
                }
                let sentences = text.components(separatedBy: "\n\n")
                try text.write(to: train, atomically: true, encoding: .utf8)
                try (sentences.prefix(12).joined(separator: "\n\n") + "\n").write(
                    to: validation, atomically: true, encoding: .utf8)
            } else {
                // 40 lines of the prepared English corpus, labelled by whether they mention "the".
                func csv(_ lines: [String]) -> String {
                    "text,label\n"
                        + lines.map { line in
                            "\"\(line.replacingOccurrences(of: "\"", with: "\"\""))\","
                                + (line.lowercased().contains("the ") ? "the" : "other")
                        }.joined(separator: "\n") + "\n"
                }
                let lines = try corpusLines(40)
                try csv(lines).write(to: train, atomically: true, encoding: .utf8)
                try csv(Array(lines.prefix(12))).write(to: validation, atomically: true, encoding: .utf8)
            }
            func args(_ out: URL) -> [String] {
                [
                    "finetune", "--task", task, "--model", ModelFixtures.miniLMFolder.path, "--train", train.path,
                    "--validation", validation.path, "--out", out.path, "--epochs", "1",
                    "--batch-size", task == "classify" || task == "tag" ? "13" : "4",
                    "--max-length", task == "qa" ? "32" : "48", "--lr", "1e-4", "--log-every", "1",
                ] + (task == "qa" ? ["--doc-stride", "8"] : [])
            }
            let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
            let alone = try runBertCLI(args(one) + ["--threads", "1"])
            #expect(alone.status == 0, "\(alone.stderr)")
            let job = try mpirun([args(two)])
            #expect(job.status == 0, "\(job.stderr)")
            #expect(job.stderr.contains("bert finetune: 2 ranks x 1 thread"))
            // 40 examples in batches of 13: the last batch of 1 leaves rank 1 an empty share.
            if task == "classify" || task == "tag" { #expect(job.stdout.contains("step 4/4"), "\(job.stdout)") }
            // The same losses line by line (the printed "loss X" values), and the same model.
            func losses(_ s: String) -> [Double] {
                s.split(separator: "\n").compactMap { line in
                    let words = line.split(separator: " ")
                    return words.firstIndex(of: "loss").flatMap { $0 + 1 < words.count ? Double(words[$0 + 1]) : nil }
                }
            }
            let a = losses(alone.stdout), b = losses(job.stdout)
            #expect(a.count == b.count && a.count >= 3, "\(alone.stdout)")
            for (x, y) in zip(a, b) { #expect(abs(x - y) <= 2e-4, "\(a) vs \(b)") }
            let invariant = ["qa": ["qa_outputs.bias"], "choice": ["classifier.bias"]][task] ?? []
            #expect(try weightDifference(one, two, also: invariant) < 1e-5)
        }

        /// A rank killed mid-run ends the job within seconds with a non-zero status; the last
        /// checkpoint is intact, and `--resume` on 2 ranks ends with the model of an uninterrupted run.
        @Test func aKilledRankEndsTheJobAndItResumes() throws {
            let dir = try root("mpi-kill")
            defer { try? FileManager.default.removeItem(at: dir) }
            let text = try corpus(in: dir)
            let out = dir.appendingPathComponent("run"), whole = dir.appendingPathComponent("whole")
            let steps = 120
            let reference = try runBertCLI(pretrain(text, out: whole, steps: steps, extra: ["--threads", "1"]))
            #expect(reference.status == 0, "\(reference.stderr)")

            let launcher = try #require(Self.mpirun)
            let p = Process()
            p.executableURL = launcher
            p.arguments =
                ["--oversubscribe", "-np", "2", bertExecutable().path] + pretrain(text, out: out, steps: steps)
            var env = ProcessInfo.processInfo.environment
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait for a checkpoint past step 10, then kill rank 1 (mpirun's child with rank 1).
            let latest = out.appendingPathComponent("checkpoints/latest")
            let deadline = Date().addingTimeInterval(120)
            var victim: Int32?
            while Date() < deadline && p.isRunning && victim == nil {
                Thread.sleep(forTimeInterval: 0.1)
                guard let name = try? String(contentsOf: latest, encoding: .utf8), let n = Int(name.dropFirst(5)),
                    n >= 10
                else { continue }
                victim = rankOneProcess(of: p.processIdentifier)
            }
            let pid = try #require(victim, "no rank 1 found under mpirun")
            kill(pid, SIGKILL)
            let killed = Date()
            while p.isRunning && Date().timeIntervalSince(killed) < 30 { Thread.sleep(forTimeInterval: 0.05) }
            let stopped = Date().timeIntervalSince(killed)
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
            #expect(stopped < 10, "the job took \(stopped) s to stop")
            #expect(p.terminationStatus != 0)
            let name = try String(contentsOf: latest, encoding: .utf8)
            let checkpoint = out.appendingPathComponent("checkpoints/\(name)")
            #expect(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("model.safetensors").path))
            _ = try SafeTensorsFile(contentsOf: checkpoint.appendingPathComponent("model.safetensors"))

            let resumed = try mpirun([pretrain(text, out: out, steps: steps, extra: ["--resume"])])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(try weightDifference(whole, out) < 1e-5)
            try expectSameCurve(whole, out)
        }

        /// Ranks started with different settings (mpirun's MPMD form) stop before training, all of them.
        @Test func ranksThatDisagreeAreRefused() throws {
            let dir = try root("mpi-disagree")
            defer { try? FileManager.default.removeItem(at: dir) }
            let text = try corpus(in: dir)
            let out = dir.appendingPathComponent("run")
            let r = try mpirun([
                pretrain(text, out: out, steps: 3), pretrain(text, out: out, steps: 3, extra: ["--seed", "7"]),
            ])
            #expect(r.status != 0)
            #expect(r.stderr.contains("disagree on the run's settings and data"), "\(r.stderr)")
            // Every rank raised it: the job ends in order (no abort), and rank 0 removes what the new
            // run had made (its data, its vocabulary) so that the next attempt can start.
            #expect(!r.stderr.contains("MPI_ABORT"), "\(r.stderr)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
            #expect(left.filter { $0 != ".lock" }.isEmpty, "\(left)")
        }

        /// A rank that fails alone (its corpus is missing) stops the whole job at once, the other
        /// rank waiting in a sum included.
        @Test func aRankThatFailsAloneStopsTheJob() throws {
            let dir = try root("mpi-alone")
            defer { try? FileManager.default.removeItem(at: dir) }
            let text = try corpus(in: dir)
            let out = dir.appendingPathComponent("run")
            var broken = pretrain(text, out: out, steps: 3)
            broken[broken.firstIndex(of: text.path)!] = dir.appendingPathComponent("missing.txt").path
            let started = Date()
            let r = try mpirun([pretrain(text, out: out, steps: 3), broken], timeout: 60)
            #expect(!r.timedOut && Date().timeIntervalSince(started) < 30)
            #expect(r.status != 0)
            #expect(r.stderr.contains("error: rank 1 of 2") && r.stderr.contains("missing.txt"), "\(r.stderr)")
        }

        /// The child of `launcher` that MPI made rank 1 (from its environment).
        func rankOneProcess(of launcher: Int32) -> Int32? {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
            for entry in entries {
                guard let pid = Int32(entry),
                    let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                    status.contains("PPid:\t\(launcher)\n"),
                    let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
                else { continue }
                let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                if variables.contains("OMPI_COMM_WORLD_RANK=1") { return pid }
            }
            return nil
        }
    }
#endif
