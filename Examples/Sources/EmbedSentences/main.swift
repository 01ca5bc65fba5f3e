// Sentence embeddings with a sentence-transformers model, and the nearest neighbour of each
// sentence by cosine similarity.
//
//     swift run -c release EmbedSentences [MODEL]
//
// MODEL is a folder or a hub id (default: sentence-transformers/all-MiniLM-L6-v2, found in the
// Hugging Face cache or downloaded into it). Exits 1 when a sentence's nearest neighbour is not
// its paraphrase: the example checks itself.
import Bert
import BertHub
import Foundation

let model = CommandLine.arguments.dropFirst().first ?? "sentence-transformers/all-MiniLM-L6-v2"
// Pairs of paraphrases: each sentence's nearest neighbour should be the other of its pair.
let sentences = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply today.",
    "Shares dropped as investors sold.",
    "The cat is sleeping on the sofa.",
    "A kitten naps on the couch.",
]

do {
    let folder = try Hub.modelFolder(model)
    // Pooling and normalisation come from the folder (1_Pooling, Normalize), as in Python.
    let embedder = try SentenceEmbedder(folder: folder)
    let vectors = try embedder.embed(sentences)
    func cosine(_ a: [Float], _ b: [Float]) -> Float {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        let norms = (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
        return dot / norms
    }
    print("\(vectors.count) embeddings of \(vectors[0].count) numbers from \(folder.path)")
    var wrong = 0
    for (i, sentence) in sentences.enumerated() {
        let others = sentences.indices.filter { $0 != i }
        let nearest = others.max { cosine(vectors[i], vectors[$0]) < cosine(vectors[i], vectors[$1]) }!
        let expected = i ^ 1
        if nearest != expected { wrong += 1 }
        print(
            String(format: "%.3f", cosine(vectors[i], vectors[nearest])),
            "\(sentence)  ->  \(sentences[nearest])\(nearest == expected ? "" : "  (expected: \(sentences[expected]))")"
        )
    }
    if wrong > 0 {
        print("\(wrong) sentences are nearest to something other than their paraphrase")
        exit(1)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
