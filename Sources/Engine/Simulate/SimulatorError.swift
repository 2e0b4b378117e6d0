import Foundation
import Storage

/// What goes wrong with a simulator: an OpenAI-compatible server that is unreachable or answers
/// unexpectedly, a prompt template or tokenizer it cannot use, a trained simulator that does not
/// fit the model, predictions of the wrong shape. Each message says what to do.
public enum SimulatorError: Error, Equatable, CustomStringConvertible {
    // MARK: OpenAI-compatible server
    /// `--simulator-url` is not an http(s) URL.
    case badServerURL(String)
    /// `--simulator-model` missing.
    case noServerModel
    /// The echoed prompt has fewer tab tokens than its rows (and tail) need.
    case echoTooShort(server: String, tabs: Int, expected: Int)
    /// The server's tokenizer joins a row's tab to the next text.
    case tabJoined(server: String, token: String)
    /// No logprobs for the echoed prompt (llama-cpp-python without --logits_all).
    case noPromptLogprobs(server: String)
    /// No logprobs for the generated token.
    case noGeneratedLogprobs(server: String)
    /// A reply that is not a well-formed completion with logprobs: why, and a short escaped excerpt.
    case badReply(server: String, reason: String, excerpt: String)
    /// No digit among the alternatives where a digit is read (`where`: a row, the generated token).
    case noDigits(server: String, where: String)
    /// A completion without logprobs.
    case noLogprobs(server: String)
    /// No answer (first byte) within the deadline.
    case serverTimedOut(url: String, seconds: Int)
    /// A reply that did not finish within the deadline (drip, endless body).
    case serverTooSlow(url: String, seconds: String)
    /// A reply larger than the cap.
    case serverReplyTooLarge(url: String, megabytes: Int)
    /// A 3xx reply; `location` escaped and quoted. Not followed: the API key stays with the URL given.
    case serverRedirected(url: String, status: Int, location: String)
    /// Any other status than 200; `excerpt` is the start of the body, escaped and quoted.
    case serverStatus(url: String, status: Int, excerpt: String)
    /// No connection (the system's reason); `port` is the one to start a server on.
    case serverUnreachable(url: String, reason: String, port: Int)
    /// A connection without a (complete) HTTP reply; `reason` is ours.
    case noHTTPReply(url: String, reason: String)

    // MARK: predictions
    /// Not one prediction per context token.
    case wrongShape(simulator: String, latent: Int)
    /// Expected digits outside 0…9 (or not finite).
    case digitsOutOfRange(simulator: String, latent: Int)
    /// Either of the two above (the rewrite checks both at once).
    case badPredictions(simulator: String, latent: Int)

    // MARK: the local prompted simulator
    /// A digit the model's tokenizer splits into several tokens (`model` is its file).
    case digitNotSingleToken(model: String, digit: Int, ids: [Int])
    /// A prompt longer than the model's context.
    case promptTooLong(positions: Int, context: Int)
    /// A prompt template file that is not UTF-8 text.
    case unreadableTemplate(path: String)
    /// A prompt template (file or "built-in") that does not parse; `reason` names the line or placeholder.
    case badTemplate(source: String, reason: String)
    /// A layout character (`name`: tab, newline…) that is not one token.
    case noSingleToken(name: String)

    // MARK: the trained simulator
    /// Layers not distinct, ascending and within 0..<depth.
    case trainedLayers([Int], depth: Int)
    /// The prompt lacks (or repeats) `{{explanation}}`.
    case trainedPromptPlaceholder
    /// A context longer than the model's batch.
    case trainedContextTooLong(tokens: Int, batch: Int)
    /// A prompt longer than the model's context.
    case trainedPromptTooLong(positions: Int, context: Int)
    /// A `simulator/config.json` of another format version.
    case trainedFormatVersion(Int)
    /// Trained on another model (`file` is this session's model file).
    case trainedOnOtherModel(model: String, vocabulary: Int, width: Int, file: String)
    /// Match features other than this Loupe's.
    case trainedMatchFeatures(found: [String], expected: [String])
    /// Heads not as many, or not as wide, as the configuration says.
    case trainedHeads(folds: Int, weights: Int)
    /// A head's detection threshold (`fold<F>.detection`) outside 0 < t < 1.
    case trainedDetection(fold: Int, value: Float)
    /// Detection thresholds, but not one per head.
    case trainedDetectionCount(found: Int, folds: Int)
    /// The workspace has no `simulator/`.
    case noTrainedSimulator(workspace: String)
    /// The trained heads could not be moved into place.
    case cannotWrite(path: String, reason: String)

    // MARK: training
    /// `--folds` below 3.
    case tooFewFolds(Int)
    /// Too few explanations of firing latents to train on.
    case tooFewExplanations(Int)
    /// Ridge regression on fewer than two rows.
    case ridgeTooFewRows
    /// A ridge system that is not positive definite.
    case ridgeNotPositiveDefinite

    public var description: String {
        switch self {
        case let .badServerURL(url): return "--simulator-url \(url) is not an http(s) URL such as http://127.0.0.1:8000"
        case .noServerModel: return "the simulator server needs a model name (--simulator-model NAME)"
        case let .echoTooShort(server, tabs, expected):
            return "\(server) echoed \(tabs) tokens with a tab; the prompt has \(expected) after its prefix"
        case let .tabJoined(server, token):
            return "\(server)'s tokenizer joins a row's tab to the text after it (token \(JSONFile.quote(token))); the all-at-once layout cannot be read there, use --mode last"
        case let .noPromptLogprobs(server):
            return "\(server) returned no prompt logprobs (echo); start llama-cpp-python's server with --logits_all true"
        case let .noGeneratedLogprobs(server): return "\(server) returned no logprobs for the generated token"
        case let .badReply(server, reason, excerpt):
            return "\(server) sent a reply Loupe cannot use: \(reason) (it starts \(excerpt)); check that --simulator-url is an OpenAI-compatible completions server"
        case let .noDigits(server, place):
            return "\(server) gave no digit 0–9 among the alternatives at \(place); the simulator reads its answer there — use a model that follows the prompt, or --mode last"
        case let .noLogprobs(server): return "\(server) sent a completion without logprobs"
        case let .serverTimedOut(url, seconds): return "\(url) did not answer within \(seconds) s"
        case let .serverTooSlow(url, seconds):
            return "\(url) did not finish its reply within \(seconds) s (it sends too slowly or without end); check the server"
        case let .serverReplyTooLarge(url, megabytes):
            return "\(url) sent more than \(megabytes) MiB; a completion with logprobs is far smaller — check that --simulator-url is a completions server"
        case let .serverRedirected(url, status, location):
            return "\(url) redirected (HTTP \(status)) to \(location); Loupe does not follow redirects (the API key goes only where you point it): pass the server's own URL as --simulator-url"
        case let .serverStatus(url, status, excerpt): return "\(url) answered HTTP \(status): \(excerpt)"
        case let .serverUnreachable(url, reason, port):
            return "cannot reach \(url) (\(reason)): start a server there, e.g. `python3 -m llama_cpp.server --model data/models/SmolLM2-135M-Instruct.Q4_1.gguf --logits_all true --port \(port)` or `vllm serve MODEL`"
        case let .noHTTPReply(url, reason): return "\(url) sent no usable HTTP reply (\(reason)); check that it is an HTTP server"
        case let .wrongShape(simulator, latent):
            return "simulator \(simulator) returned predictions of the wrong shape for latent \(latent)"
        case let .digitsOutOfRange(simulator, latent):
            return "simulator \(simulator) returned expected digits outside 0…9 for latent \(latent)"
        case let .badPredictions(simulator, latent):
            return "simulator \(simulator) returned predictions of the wrong shape or outside 0…9 for latent \(latent)"
        case let .digitNotSingleToken(model, digit, ids):
            return "\(model): the digit \(digit) is not a single token (it encodes as \(ids)); the simulator reads one token per digit"
        case let .promptTooLong(positions, context):
            return "a simulation prompt needs \(positions) positions but the model's context holds \(context); use shorter contexts"
        case let .unreadableTemplate(path): return "\(path) cannot be read as UTF-8 text"
        case let .badTemplate(source, reason): return "simulator prompt \(source): \(reason)"
        case let .noSingleToken(name): return "the simulator's tokenizer has no single token for a \(name); it cannot lay out rows"
        case let .trainedLayers(layers, depth):
            return "trained simulator: layers \(layers) must be distinct, ascending and within the model's 0…\(depth - 1)"
        case .trainedPromptPlaceholder: return "trained simulator: the prompt must hold {{explanation}} once"
        case let .trainedContextTooLong(tokens, batch):
            return "trained simulator: a context of \(tokens) tokens is longer than the model's batch of \(batch); use shorter contexts"
        case let .trainedPromptTooLong(positions, context):
            return "trained simulator: a prompt needs \(positions) positions but the model's context holds \(context)"
        case let .trainedFormatVersion(version):
            return "trained simulator: format version \(version) is not 1; train it again with `loupe train-simulator`"
        case let .trainedOnOtherModel(model, vocabulary, width, file):
            return "trained simulator: it was trained on \(model) (vocabulary \(vocabulary), width \(width)), not \(file); train it again with `loupe train-simulator`"
        case let .trainedMatchFeatures(found, expected):
            return "trained simulator: its match features \(found) are not this Loupe's \(expected); train it again"
        case let .trainedHeads(folds, weights):
            return "trained simulator: expected \(folds) heads of \(weights) weights; train it again"
        case let .trainedDetection(fold, value):
            return "trained simulator: fold\(fold).detection is \(value), not a fraction between 0 and 1; set it again with `loupe train-simulator --detection-only`"
        case let .trainedDetectionCount(found, folds):
            return "trained simulator: \(found) detection thresholds for \(folds) heads; set them again with `loupe train-simulator --detection-only`"
        case let .noTrainedSimulator(workspace):
            return "the workspace at \(workspace) has no trained simulator; train one with `loupe train-simulator` (or pass --simulator prompted-all)"
        case let .cannotWrite(path, reason): return "cannot write \(path): \(reason)"
        case .tooFewFolds:
            return "train-simulator: --folds must be at least 3 (each head's penalty is cross-validated on the other folds)"
        case let .tooFewExplanations(count):
            return "train-simulator: \(count) explanations of latents that fire are too few to train on; write them with `loupe explain --explainer lexical` first"
        case .ridgeTooFewRows: return "ridge: fewer than two training rows"
        case .ridgeNotPositiveDefinite: return "ridge: the system is not positive definite (raise the penalty)"
        }
    }
}
