import Engine
import Formats
import Foundation
import Model
import Storage
import Transcoder

/// `--dictionary` on build/train/cache and `loupe info --dictionary`: dictionaries in the formats of
/// `DictionaryFormat` (sparsify, SAELens, Gemma Scope, circuit-tracer).
enum DictionaryCommands {
    /// Reads `--dictionary` (or `--transcoder`) into the build options: says which format it found,
    /// takes the dictionary's layer (unless --layer is given, which must then agree), site (an SAE on
    /// the residual stream builds a residual workspace), latents and TopK k, and refuses what the build
    /// cannot use (a dictionary at another site) in one line naming the file and field. Width is
    /// checked once the model is loaded (`Builder.train`).
    static func apply(_ a: inout Arguments, to o: inout BuildOptions, layerGiven: Bool, kGiven: Bool, siteGiven: Bool) throws {
        let given = try a.option("--dictionary")
        if given != nil && o.transcoderDirectory != nil { throw UserError("give --dictionary or --transcoder, not both (--dictionary reads sparsify folders too)") }
        guard let path = given ?? o.transcoderDirectory else { return }
        let d = try describe(path)
        Console.progress("\(given != nil ? "--dictionary" : "--transcoder"): found a \(d.summary)")
        do {
            try d.check(modelWidth: d.dIn, layers: Int.max, buildable: true, layer: layerGiven ? o.layer : nil)
        } catch let e as DictionaryError { throw UserError("\(e)") }
        let site: DictionarySite = d.kind == .sae ? .residual : .mlp
        if siteGiven && site != o.site {
            throw UserError("--site \(o.site.rawValue): \(d.configFile) holds \(d.kind == .sae ? "an SAE" : "a transcoder") (\(d.hookpoint)); drop --site")
        }
        o.site = site
        if site == .residual { o.skipConnection = false }
        guard given != nil else { return }
        if let layer = d.layer { o.layer = layer }
        o.latents = d.latents
        if let k = d.k {
            if kGiven && o.k != k { throw UserError("--k \(o.k): the dictionary's k is \(k) (\(d.configFile)); drop --k") }
            o.k = k
        }
        o.k = min(o.k, d.latents - 1)
        o.dictionaryPath = path
    }

    /// `Dictionaries.describe`, its errors as one-line user errors.
    static func describe(_ path: String) throws -> DictionaryDescription {
        do { return try Dictionaries.describe(path) } catch let e as DictionaryError {
            throw UserError("\(e)")
        } catch let e as FormatError {
            throw UserError("\(e)")
        } catch let e as TranscoderError {
            throw UserError("\(e)")
        }
    }

    /// `loupe info --dictionary PATH [--layer L] [--json] [--model PATH]`: the dictionary described
    /// without building, and checked against the model's width and layer count (from the GGUF header).
    static func info(_ a: inout Arguments, path: String, json: Bool) throws {
        let modelPath = try a.option("--model")
        let layer = a.has("--layer") ? try a.int("--layer", default: 0, range: 0...1000) : nil
        _ = try a.positionals()
        let d = try describe(path)
        let resolved = try ModelFetch.resolve(modelPath, progress: Console.progress)
        let config = try LlamaConfig(gguf: GGUFFile(path: resolved))
        do {
            try d.check(modelWidth: config.dim, layers: config.layers, buildable: false, layer: layer)
        } catch let e as DictionaryError { throw UserError("\(e)") }
        let buildable = d.buildable
        let note = d.buildNote
        if json {
            var pairs: [(String, JSON)] = [
                ("path", .string(d.path)), ("format", .string(d.format.rawValue)), ("kind", .string(d.kind.rawValue)),
                ("site", .string(d.site.rawValue)), ("hookpoint", .string(d.hookpoint)), ("layer", d.layer.map { .int($0) } ?? .null),
                ("d_in", .int(d.dIn)), ("d_out", .int(d.dOut)), ("latents", .int(d.latents)), ("activation", .string(d.activation)),
                ("k", d.k.map { .int($0) } ?? .null), ("skip_connection", .bool(d.skipConnection)), ("architecture", .string(d.architecture)),
                ("config_file", .string(d.configFile)), ("model", .string(resolved)), ("model_width", .int(config.dim)),
                ("model_layers", .int(config.layers)), ("buildable", .bool(buildable)),
            ]
            if !buildable { pairs.append(("reason", .string(note))) }
            Console.print(JSON.object(pairs).text)
            return
        }
        Console.print("dictionary  \(d.path)")
        Console.print("format      \(d.format.title) (\(d.architecture)), read from \(d.configFile)")
        Console.print("kind        \(d.kind == .transcoder ? "transcoder" : "SAE") on the \(d.site.rawValue)\(d.layer.map { " of layer \($0)" } ?? "")")
        Console.print("hookpoint   \(d.hookpoint)")
        Console.print("shape       d_in \(d.dIn), \(d.latents) latents\(d.skipConnection ? ", skip connection" : "")")
        Console.print("activation  \(d.activation)\(d.k.map { ", k = \($0)" } ?? "")")
        Console.print("model       \((resolved as NSString).lastPathComponent): hidden size \(config.dim) matches, \(config.layers) layers")
        Console.print("build       \(note)")
    }
}
