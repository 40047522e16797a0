import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  S3Operations,
  createS3Client,
  init_protocols,
  isConditionalConflict,
  isNotFound,
  isPreconditionFailed,
  isTransient,
  protocols_exports,
  rejectsConditionalWrites,
  require_dist_cjs,
  s3Failure,
  storageFailure,
  watchMultipartUploads
} from "./chunk-H2XU2DFA.js";
import "./chunk-2KNW7CCO.js";
import {
  MultipartJournal
} from "./chunk-YGZCLC4M.js";
import {
  endpoints_exports,
  init_endpoints
} from "./chunk-Q2Q7FUMK.js";
import {
  deleteRightsWarning
} from "./chunk-65PDRPDF.js";
import {
  ObjectNotFoundError,
  isBulkData
} from "./chunk-DJGOHILF.js";
import "./chunk-VUL3BGMR.js";
import "./chunk-Y65GFRZN.js";
import {
  ConfigError,
  StorageError
} from "./chunk-ZX3CBUM6.js";
import {
  __commonJS,
  __require,
  __toCommonJS,
  __toESM
} from "./chunk-IPUA4CZY.js";

// node_modules/@aws-sdk/lib-storage/dist-cjs/index.js
var require_dist_cjs2 = __commonJS({
  "node_modules/@aws-sdk/lib-storage/dist-cjs/index.js"(exports) {
    var { PutObjectCommand: PutObjectCommand2, ChecksumAlgorithm, CreateMultipartUploadCommand, AbortMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, PutObjectTaggingCommand } = require_dist_cjs();
    var { toEndpointV1, getEndpointFromInstructions } = (init_endpoints(), __toCommonJS(endpoints_exports));
    var { extendedEncodeURIComponent } = (init_protocols(), __toCommonJS(protocols_exports));
    var { EventEmitter } = __require("events");
    var { Buffer: Buffer2 } = __require("buffer");
    var { statSync, ReadStream } = __require("node:fs");
    var { Readable } = __require("stream");
    var runtimeConfigShared = {
      statSync: () => {
      },
      isFileReadStream(f) {
        return false;
      }
    };
    var runtimeConfig = {
      ...runtimeConfigShared,
      runtime: "node",
      statSync,
      isFileReadStream(f) {
        return f instanceof ReadStream;
      }
    };
    var byteLength = (input) => {
      if (input == null) {
        return 0;
      }
      if (typeof input === "string") {
        return Buffer2.byteLength(input);
      }
      if (typeof input.byteLength === "number") {
        return input.byteLength;
      } else if (typeof input.length === "number") {
        return input.length;
      } else if (typeof input.size === "number") {
        return input.size;
      } else if (typeof input.start === "number" && typeof input.end === "number") {
        return input.end + 1 - input.start;
      } else if (runtimeConfig.isFileReadStream(input)) {
        try {
          return runtimeConfig.statSync(input.path).size;
        } catch (error) {
          return void 0;
        }
      }
      return void 0;
    };
    var BYTE_LENGTH_SOURCE;
    (function(BYTE_LENGTH_SOURCE2) {
      BYTE_LENGTH_SOURCE2["EMPTY_INPUT"] = "a null or undefined Body";
      BYTE_LENGTH_SOURCE2["CONTENT_LENGTH"] = "the ContentLength property of the params set by the caller";
      BYTE_LENGTH_SOURCE2["STRING_LENGTH"] = "the encoded byte length of the Body string";
      BYTE_LENGTH_SOURCE2["TYPED_ARRAY"] = "the byteLength of a typed byte array such as Uint8Array";
      BYTE_LENGTH_SOURCE2["LENGTH"] = "the value of Body.length";
      BYTE_LENGTH_SOURCE2["SIZE"] = "the value of Body.size";
      BYTE_LENGTH_SOURCE2["START_END_DIFF"] = "the numeric difference between Body.start and Body.end";
      BYTE_LENGTH_SOURCE2["STAT"] = "the size of the file given by Body.path on disk as reported by statSync";
    })(BYTE_LENGTH_SOURCE || (BYTE_LENGTH_SOURCE = {}));
    var byteLengthSource = (input, override) => {
      if (override != null) {
        return BYTE_LENGTH_SOURCE.CONTENT_LENGTH;
      }
      if (input == null) {
        return BYTE_LENGTH_SOURCE.EMPTY_INPUT;
      }
      if (typeof input === "string") {
        return BYTE_LENGTH_SOURCE.STRING_LENGTH;
      }
      if (typeof input.byteLength === "number") {
        return BYTE_LENGTH_SOURCE.TYPED_ARRAY;
      } else if (typeof input.length === "number") {
        return BYTE_LENGTH_SOURCE.LENGTH;
      } else if (typeof input.size === "number") {
        return BYTE_LENGTH_SOURCE.SIZE;
      } else if (typeof input.start === "number" && typeof input.end === "number") {
        return BYTE_LENGTH_SOURCE.START_END_DIFF;
      } else if (runtimeConfig.isFileReadStream(input)) {
        try {
          runtimeConfig.statSync(input.path).size;
          return BYTE_LENGTH_SOURCE.STAT;
        } catch (error) {
          return void 0;
        }
      }
      return void 0;
    };
    async function* getChunkStream(data, partSize, getNextData) {
      let partNumber = 1;
      const currentBuffer = { chunks: [], length: 0 };
      for await (const datum of getNextData(data)) {
        currentBuffer.chunks.push(datum);
        currentBuffer.length += datum.byteLength;
        while (currentBuffer.length > partSize) {
          const dataChunk = currentBuffer.chunks.length > 1 ? Buffer2.concat(currentBuffer.chunks) : currentBuffer.chunks[0];
          yield {
            partNumber,
            data: dataChunk.subarray(0, partSize)
          };
          currentBuffer.chunks = [dataChunk.subarray(partSize)];
          currentBuffer.length = currentBuffer.chunks[0].byteLength;
          partNumber += 1;
        }
      }
      yield {
        partNumber,
        data: currentBuffer.chunks.length !== 1 ? Buffer2.concat(currentBuffer.chunks) : currentBuffer.chunks[0],
        lastPart: true
      };
    }
    async function* getChunkUint8Array(data, partSize) {
      let partNumber = 1;
      let startByte = 0;
      let endByte = partSize;
      while (endByte < data.byteLength) {
        yield {
          partNumber,
          data: data.subarray(startByte, endByte)
        };
        partNumber += 1;
        startByte = endByte;
        endByte = startByte + partSize;
      }
      yield {
        partNumber,
        data: data.subarray(startByte),
        lastPart: true
      };
    }
    async function* getDataReadable(data) {
      for await (const chunk of data) {
        if (Buffer2.isBuffer(chunk) || chunk instanceof Uint8Array) {
          yield chunk;
        } else {
          yield Buffer2.from(chunk);
        }
      }
    }
    async function* getDataReadableStream(data) {
      const reader = data.getReader();
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) {
            return;
          }
          if (Buffer2.isBuffer(value) || value instanceof Uint8Array) {
            yield value;
          } else {
            yield Buffer2.from(value);
          }
        }
      } catch (e) {
        throw e;
      } finally {
        reader.releaseLock();
      }
    }
    var getChunk = (data, partSize) => {
      if (data instanceof Uint8Array) {
        return getChunkUint8Array(data, partSize);
      }
      if (data instanceof Readable) {
        return getChunkStream(data, partSize, getDataReadable);
      }
      if (data instanceof String || typeof data === "string") {
        return getChunkUint8Array(Buffer2.from(data), partSize);
      }
      if (typeof data.stream === "function") {
        return getChunkStream(data.stream(), partSize, getDataReadableStream);
      }
      if (data instanceof ReadableStream) {
        return getChunkStream(data, partSize, getDataReadableStream);
      }
      throw new Error("Body Data is unsupported format, expected data to be one of: string | Uint8Array | Buffer | Readable | ReadableStream | Blob;.");
    };
    var Upload2 = class _Upload extends EventEmitter {
      static MIN_PART_SIZE = 1024 * 1024 * 5;
      MAX_PARTS = 1e4;
      queueSize = 4;
      partSize;
      leavePartsOnError = false;
      tags = [];
      client;
      params;
      totalBytes;
      totalBytesSource;
      bytesUploadedSoFar;
      abortController;
      concurrentUploaders = [];
      createMultiPartPromise;
      abortMultipartUploadCommand = null;
      uploadedParts = [];
      uploadEnqueuedPartsCount = 0;
      expectedPartsCount;
      uploadId;
      uploadEvent;
      isMultiPart = true;
      singleUploadResult;
      sent = false;
      constructor(options) {
        super();
        this.queueSize = options.queueSize || this.queueSize;
        this.leavePartsOnError = options.leavePartsOnError || this.leavePartsOnError;
        this.tags = options.tags || this.tags;
        this.client = options.client;
        this.params = options.params;
        if (!this.params) {
          throw new Error(`InputError: Upload requires params to be passed to upload.`);
        }
        this.totalBytes = this.params.ContentLength ?? byteLength(this.params.Body);
        this.totalBytesSource = byteLengthSource(this.params.Body, this.params.ContentLength);
        this.bytesUploadedSoFar = 0;
        this.abortController = options.abortController ?? new AbortController();
        this.partSize = options.partSize || Math.max(_Upload.MIN_PART_SIZE, Math.ceil((this.totalBytes || 0) / this.MAX_PARTS));
        if (this.totalBytes !== void 0) {
          this.expectedPartsCount = Math.ceil(this.totalBytes / this.partSize);
        }
        this.__validateInput();
      }
      async abort() {
        this.abortController.abort();
      }
      async done() {
        if (this.sent) {
          throw new Error("@aws-sdk/lib-storage: this instance of Upload has already executed .done(). Create a new instance.");
        }
        this.sent = true;
        return await Promise.race([this.__doMultipartUpload(), this.__abortTimeout(this.abortController.signal)]);
      }
      on(event, listener) {
        this.uploadEvent = event;
        return super.on(event, listener);
      }
      async __uploadUsingPut(dataPart) {
        this.isMultiPart = false;
        const params = { ...this.params, Body: dataPart.data };
        const clientConfig = this.client.config;
        const requestHandler = clientConfig.requestHandler;
        const eventEmitter = requestHandler instanceof EventEmitter ? requestHandler : null;
        const uploadEventListener = (event) => {
          this.bytesUploadedSoFar = event.loaded;
          this.totalBytes = event.total;
          this.__notifyProgress({
            loaded: this.bytesUploadedSoFar,
            total: this.totalBytes,
            part: dataPart.partNumber,
            Key: this.params.Key,
            Bucket: this.params.Bucket
          });
        };
        if (eventEmitter !== null) {
          eventEmitter.on("xhr.upload.progress", uploadEventListener);
        }
        const resolved = await Promise.all([this.client.send(new PutObjectCommand2(params)), clientConfig?.endpoint?.()]);
        const putResult = resolved[0];
        let endpoint = resolved[1];
        if (!endpoint) {
          endpoint = toEndpointV1(await getEndpointFromInstructions(params, PutObjectCommand2, {
            ...clientConfig
          }));
        }
        if (!endpoint) {
          throw new Error('Could not resolve endpoint from S3 "client.config.endpoint()" nor EndpointsV2.');
        }
        if (eventEmitter !== null) {
          eventEmitter.off("xhr.upload.progress", uploadEventListener);
        }
        const locationKey = this.params.Key.split("/").map((segment) => extendedEncodeURIComponent(segment)).join("/");
        const locationBucket = extendedEncodeURIComponent(this.params.Bucket);
        const Location = (() => {
          const endpointHostnameIncludesBucket = endpoint.hostname.startsWith(`${locationBucket}.`);
          const forcePathStyle = this.client.config.forcePathStyle;
          const optionalPort = endpoint.port ? `:${endpoint.port}` : ``;
          if (forcePathStyle) {
            return `${endpoint.protocol}//${endpoint.hostname}${optionalPort}/${locationBucket}/${locationKey}`;
          }
          if (endpointHostnameIncludesBucket) {
            return `${endpoint.protocol}//${endpoint.hostname}${optionalPort}/${locationKey}`;
          }
          return `${endpoint.protocol}//${locationBucket}.${endpoint.hostname}${optionalPort}/${locationKey}`;
        })();
        this.singleUploadResult = {
          ...putResult,
          Bucket: this.params.Bucket,
          Key: this.params.Key,
          Location
        };
        const totalSize = byteLength(dataPart.data);
        this.__notifyProgress({
          loaded: totalSize,
          total: totalSize,
          part: 1,
          Key: this.params.Key,
          Bucket: this.params.Bucket
        });
      }
      async __createMultipartUpload() {
        const requestChecksumCalculation = await this.client.config.requestChecksumCalculation();
        if (!this.createMultiPartPromise) {
          const createCommandParams = { ...this.params, Body: void 0 };
          if (requestChecksumCalculation === "WHEN_SUPPORTED") {
            createCommandParams.ChecksumAlgorithm = this.params.ChecksumAlgorithm || ChecksumAlgorithm.CRC32;
          }
          this.createMultiPartPromise = this.client.send(new CreateMultipartUploadCommand(createCommandParams)).then((createMpuResponse) => {
            this.abortMultipartUploadCommand = new AbortMultipartUploadCommand({
              Bucket: this.params.Bucket,
              Key: this.params.Key,
              UploadId: createMpuResponse.UploadId
            });
            return createMpuResponse;
          });
        }
        return this.createMultiPartPromise;
      }
      async __doConcurrentUpload(dataFeeder) {
        for await (const dataPart of dataFeeder) {
          if (this.uploadEnqueuedPartsCount > this.MAX_PARTS) {
            throw new Error(`Exceeded ${this.MAX_PARTS} parts in multipart upload to Bucket: ${this.params.Bucket} Key: ${this.params.Key}.`);
          }
          if (this.abortController.signal.aborted) {
            return;
          }
          if (dataPart.partNumber === 1 && dataPart.lastPart) {
            return await this.__uploadUsingPut(dataPart);
          }
          if (!this.uploadId) {
            const { UploadId } = await this.__createMultipartUpload();
            this.uploadId = UploadId;
            if (this.abortController.signal.aborted) {
              return;
            }
          }
          const partSize = byteLength(dataPart.data) || 0;
          const requestHandler = this.client.config.requestHandler;
          const eventEmitter = requestHandler instanceof EventEmitter ? requestHandler : null;
          let lastSeenBytes = 0;
          const uploadEventListener = (event, request) => {
            const requestPartSize = Number(request.query["partNumber"]) || -1;
            if (requestPartSize !== dataPart.partNumber) {
              return;
            }
            if (event.total && partSize) {
              this.bytesUploadedSoFar += event.loaded - lastSeenBytes;
              lastSeenBytes = event.loaded;
            }
            this.__notifyProgress({
              loaded: this.bytesUploadedSoFar,
              total: this.totalBytes,
              part: dataPart.partNumber,
              Key: this.params.Key,
              Bucket: this.params.Bucket
            });
          };
          if (eventEmitter !== null) {
            eventEmitter.on("xhr.upload.progress", uploadEventListener);
          }
          this.uploadEnqueuedPartsCount += 1;
          this.__validateUploadPart(dataPart);
          const partResult = await this.client.send(new UploadPartCommand({
            ...this.params,
            ContentLength: void 0,
            UploadId: this.uploadId,
            Body: dataPart.data,
            PartNumber: dataPart.partNumber
          }));
          if (eventEmitter !== null) {
            eventEmitter.off("xhr.upload.progress", uploadEventListener);
          }
          if (this.abortController.signal.aborted) {
            return;
          }
          if (!partResult.ETag) {
            throw new Error(`Part ${dataPart.partNumber} is missing ETag in UploadPart response. Missing Bucket CORS configuration for ETag header?`);
          }
          this.uploadedParts.push({
            PartNumber: dataPart.partNumber,
            ETag: partResult.ETag,
            ...partResult.ChecksumCRC32 && { ChecksumCRC32: partResult.ChecksumCRC32 },
            ...partResult.ChecksumCRC32C && { ChecksumCRC32C: partResult.ChecksumCRC32C },
            ...partResult.ChecksumCRC64NVME && { ChecksumCRC64NVME: partResult.ChecksumCRC64NVME },
            ...partResult.ChecksumSHA1 && { ChecksumSHA1: partResult.ChecksumSHA1 },
            ...partResult.ChecksumSHA256 && { ChecksumSHA256: partResult.ChecksumSHA256 }
          });
          if (eventEmitter === null) {
            this.bytesUploadedSoFar += partSize;
          }
          this.__notifyProgress({
            loaded: this.bytesUploadedSoFar,
            total: this.totalBytes,
            part: dataPart.partNumber,
            Key: this.params.Key,
            Bucket: this.params.Bucket
          });
        }
      }
      async __doMultipartUpload() {
        const dataFeeder = getChunk(this.params.Body, this.partSize);
        const concurrentUploaderFailures = [];
        for (let index = 0; index < this.queueSize; index++) {
          const currentUpload = this.__doConcurrentUpload(dataFeeder).catch((err) => {
            concurrentUploaderFailures.push(err);
          });
          this.concurrentUploaders.push(currentUpload);
        }
        await Promise.all(this.concurrentUploaders);
        if (concurrentUploaderFailures.length >= 1) {
          await this.markUploadAsAborted();
          throw concurrentUploaderFailures[0];
        }
        if (this.abortController.signal.aborted) {
          await this.markUploadAsAborted();
          throw Object.assign(new Error("Upload aborted."), { name: "AbortError" });
        }
        let result;
        if (this.isMultiPart) {
          const { expectedPartsCount, uploadedParts, totalBytes, totalBytesSource } = this;
          if (totalBytes !== void 0 && expectedPartsCount !== void 0 && uploadedParts.length !== expectedPartsCount) {
            await this.markUploadAsAborted();
            throw new Error(`Expected ${expectedPartsCount} part(s) but uploaded ${uploadedParts.length} part(s).
The expected part count is based on the byte-count of the input.params.Body,
which was read from ${totalBytesSource} and is ${totalBytes}.
If this is not correct, provide an override value by setting a number
to input.params.ContentLength in bytes.
`);
          }
          this.uploadedParts.sort((a, b) => a.PartNumber - b.PartNumber);
          const uploadCompleteParams = {
            ...this.params,
            Body: void 0,
            UploadId: this.uploadId,
            MultipartUpload: {
              Parts: this.uploadedParts
            }
          };
          try {
            result = await this.client.send(new CompleteMultipartUploadCommand(uploadCompleteParams));
          } catch (e) {
            await this.markUploadAsAborted().catch((abortError) => {
              if (e instanceof Error && e.cause === void 0) {
                e.cause = abortError;
              }
            });
            throw e;
          }
          if (typeof result?.Location === "string" && result.Location.includes("%2F")) {
            result.Location = result.Location.replace(/%2F/g, "/");
          }
        } else {
          result = this.singleUploadResult;
        }
        this.abortMultipartUploadCommand = null;
        if (this.tags.length) {
          await this.client.send(new PutObjectTaggingCommand({
            ...this.params,
            Tagging: {
              TagSet: this.tags
            }
          }));
        }
        return result;
      }
      async markUploadAsAborted() {
        if (this.uploadId && !this.leavePartsOnError && null !== this.abortMultipartUploadCommand) {
          await this.client.send(this.abortMultipartUploadCommand);
          this.abortMultipartUploadCommand = null;
        }
      }
      __notifyProgress(progress) {
        if (this.uploadEvent) {
          this.emit(this.uploadEvent, progress);
        }
      }
      async __abortTimeout(abortSignal) {
        return new Promise((resolve, reject) => {
          abortSignal.onabort = () => {
            const abortError = new Error("Upload aborted.");
            abortError.name = "AbortError";
            reject(abortError);
          };
        });
      }
      __validateUploadPart(dataPart) {
        const actualPartSize = byteLength(dataPart.data);
        if (actualPartSize === void 0) {
          throw new Error(`A dataPart was generated without a measurable data chunk size for part number ${dataPart.partNumber}`);
        }
        if (dataPart.partNumber === 1 && dataPart.lastPart) {
          return;
        }
        if (!dataPart.lastPart && actualPartSize !== this.partSize) {
          throw new Error(`The byte size for part number ${dataPart.partNumber}, size ${actualPartSize} does not match expected size ${this.partSize}`);
        }
      }
      __validateInput() {
        if (!this.client) {
          throw new Error(`InputError: Upload requires a AWS client to do uploads with.`);
        }
        if (this.partSize < _Upload.MIN_PART_SIZE) {
          throw new Error(`EntityTooSmall: Your proposed upload part size [${this.partSize}] is smaller than the minimum allowed size [${_Upload.MIN_PART_SIZE}] (5MB)`);
        }
        if (this.queueSize < 1) {
          throw new Error(`Queue size: Must have at least one uploading queue.`);
        }
      }
    };
    exports.Upload = Upload2;
  }
});

// src/storage/s3.ts
var import_client_s3 = __toESM(require_dist_cjs(), 1);
var import_lib_storage = __toESM(require_dist_cjs2(), 1);

// src/storage/s3-url.ts
function parseS3Url(url) {
  const hint = "write the repository as s3://BUCKET or s3://BUCKET/PREFIX";
  if (/^s3:\/\/[^@]*:[^@]*@/i.test(url)) {
    throw new ConfigError(
      "the s3:// repository URL must not contain credentials",
      "remove them: credentials come from the AWS default chain (environment, profile, OIDC)"
    );
  }
  const match = /^s3:\/\/([^/?#]*)([^?#]*)$/i.exec(url);
  if (!match) throw new ConfigError("the s3:// repository URL has a query or fragment", hint);
  const [, authority = "", path = ""] = match;
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(authority)) {
    throw new ConfigError(
      `'${authority}' in ${url} is not a valid bucket name`,
      `${hint}; bucket names have 3 to 63 lowercase letters, digits, dots and hyphens`
    );
  }
  let decoded;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw new ConfigError(`the prefix in ${url} is not valid percent-encoding`, hint);
  }
  const trimmed = decoded.replace(/^\/+/, "").replace(/\/+$/, "");
  const parts = trimmed ? trimmed.split("/") : [];
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    throw new ConfigError(
      `the prefix in ${url} has an empty, '.' or '..' part`,
      `${hint}, e.g. s3://my-bucket/backups/app`
    );
  }
  return { bucket: authority, prefix: parts.length ? `${parts.join("/")}/` : "" };
}
function endpointHost(endpoint) {
  try {
    return new URL(endpoint).host;
  } catch {
    return "a custom endpoint";
  }
}

// src/storage/s3.ts
var DEFAULT_CONCURRENCY = 8;
var MULTIPART_THRESHOLD = 16 * 1024 * 1024;
var PART_SIZE = 8 * 1024 * 1024;
var OWN_ATTEMPTS = 5;
var DAY_MS = 24 * 60 * 60 * 1e3;
var S3Storage = class _S3Storage {
  constructor(bucket, prefix, settings = {}, env = process.env) {
    this.bucket = bucket;
    this.prefix = prefix;
    this.settings = settings;
    this.region = settings.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
    this.concurrency = settings.concurrency ?? DEFAULT_CONCURRENCY;
    const where = `s3://${bucket}${prefix ? `/${prefix.slice(0, -1)}` : ""}`;
    this.location = settings.endpoint ? `${where} at ${endpointHost(settings.endpoint)}` : where;
    this.operations = new S3Operations(bucket, prefix, this.location, settings);
    this.secrets = [env, process.env].flatMap(
      (e) => [e.AWS_SECRET_ACCESS_KEY, e.AWS_SESSION_TOKEN].filter((s) => !!s)
    );
    this.client = createS3Client(settings, this.region);
    const journal = env.KLUIS_MULTIPART_JOURNAL;
    watchMultipartUploads(
      this.client,
      { endpoint: settings.endpoint, region: this.region, pathStyle: settings.pathStyle ?? false },
      journal ? new MultipartJournal(journal) : void 0
    );
  }
  bucket;
  prefix;
  settings;
  location;
  concurrency;
  client;
  region;
  secrets;
  operations;
  /** Cleared when the service answers that it does not implement If-None-Match. */
  conditionalWrites = true;
  /** Writes in progress per name, so that one client never races itself (see putIfAbsent). */
  writing = /* @__PURE__ */ new Map();
  static fromUrl(url, settings, env) {
    const { bucket, prefix } = parseS3Url(url);
    return new _S3Storage(bucket, prefix, settings, env);
  }
  async create() {
    try {
      await this.client.send(new import_client_s3.HeadBucketCommand({ Bucket: this.bucket }));
      return "exists";
    } catch (error) {
      if (!isNotFound(s3Failure(error)))
        throw this.failure(this.operations.ofBucket("check"), error);
    }
    const constraint = this.region !== "us-east-1" && this.region !== "auto";
    try {
      await this.client.send(
        new import_client_s3.CreateBucketCommand({
          Bucket: this.bucket,
          ...constraint ? {
            CreateBucketConfiguration: {
              LocationConstraint: this.region
            }
          } : {},
          ...this.settings.objectLock ? { ObjectLockEnabledForBucket: true } : {}
        })
      );
      return "created";
    } catch (error) {
      const { code } = s3Failure(error);
      if (code === "BucketAlreadyOwnedByYou") return "exists";
      if (code === "BucketAlreadyExists") {
        throw new StorageError(
          `cannot create bucket ${this.bucket}: the name is taken by another account`,
          "bucket names are global: choose another one in `repository:`"
        );
      }
      throw this.failure(this.operations.ofBucket("create"), error);
    }
  }
  async posture(retentionDays) {
    const warnings = [];
    const unanswered = (what, permission, error) => {
      const { status, code } = s3Failure(error);
      const why = status === 403 || code === "AccessDenied" ? `the credentials lack ${permission}` : `the service did not answer (${status ? `${status} ` : ""}${code})`;
      return `could not check ${what} of bucket ${this.bucket}: ${why}`;
    };
    try {
      const versioning = await this.client.send(
        new import_client_s3.GetBucketVersioningCommand({ Bucket: this.bucket })
      );
      if (versioning.Status !== "Enabled") {
        warnings.push(
          `versioning is ${versioning.Status === "Suspended" ? "suspended" : "not enabled"} on bucket ${this.bucket}: a deleted or overwritten object cannot be recovered`
        );
      }
    } catch (error) {
      warnings.push(unanswered("versioning", "s3:GetBucketVersioning", error));
    }
    try {
      const lock = await this.client.send(
        new import_client_s3.GetObjectLockConfigurationCommand({ Bucket: this.bucket })
      );
      const configuration = lock.ObjectLockConfiguration;
      const rule = configuration?.Rule?.DefaultRetention;
      const bucketDays = rule?.Days ?? (rule?.Years !== void 0 ? rule.Years * 365 : void 0);
      const days = this.settings.objectLock?.days ?? bucketDays;
      if (configuration?.ObjectLockEnabled !== "Enabled") {
        warnings.push(this.noLock());
      } else if (days === void 0) {
        warnings.push(
          `object lock is enabled on bucket ${this.bucket} but neither a default retention nor storage.object-lock is set: objects are written without retention`
        );
      } else if (days < retentionDays) {
        warnings.push(
          `object lock retention (${days} days) is shorter than the backup retention window (${retentionDays} days): older snapshots can be deleted`
        );
      }
    } catch (error) {
      const { code } = s3Failure(error);
      if (code === "ObjectLockConfigurationNotFoundError") warnings.push(this.noLock());
      else warnings.push(unanswered("object lock", "s3:GetBucketObjectLockConfiguration", error));
    }
    return [...warnings, ...await deleteRightsWarning(this)];
  }
  noLock() {
    return `object lock is not enabled on bucket ${this.bucket}: whoever holds credentials that may delete can destroy the backups`;
  }
  /**
   * HEAD first (an existing chunk is not uploaded again), then a conditional PUT
   * (If-None-Match: *): 412 means another writer got there first. Where the service rejects the
   * header, this client remembers it and writes unconditionally after the HEAD. That is safe
   * for kluis: every object name is content-addressed (chunks, keys) or random (snapshots,
   * locks), so two writers racing for one name write the same bytes. Services that ignore the
   * header (s3rver) behave the same way. Writes of one name through this client are
   * serialized, so one client never races itself even without conditional writes.
   */
  async putIfAbsent(name, data) {
    const previous = this.writing.get(name);
    const current = (previous ?? Promise.resolve(false)).catch(() => false).then(() => this.write(name, data));
    this.writing.set(name, current);
    try {
      return await current;
    } finally {
      if (this.writing.get(name) === current) this.writing.delete(name);
    }
  }
  async write(name, data) {
    const operation = this.operations.object("write", name);
    if (await this.exists(name, operation)) return false;
    for (let attempt = 1; ; attempt++) {
      const conditional = this.conditionalWrites;
      try {
        await this.upload(name, data, conditional);
        return true;
      } catch (error) {
        const failure = s3Failure(error);
        if (conditional && isPreconditionFailed(failure)) {
          return failure.attempts > 1 ? await this.holds(name, data, operation) : false;
        }
        if (conditional && rejectsConditionalWrites(failure, error)) {
          this.conditionalWrites = false;
          continue;
        }
        if (conditional && isConditionalConflict(failure) && attempt < OWN_ATTEMPTS) {
          await pause(attempt);
          continue;
        }
        throw this.failure(operation, error);
      }
    }
  }
  async upload(name, data, conditional) {
    const params = {
      Bucket: this.bucket,
      Key: this.key(name),
      Body: data,
      ContentType: "application/octet-stream",
      ...conditional ? { IfNoneMatch: "*" } : {},
      ...this.writeOptions(name)
    };
    if (data.length <= MULTIPART_THRESHOLD) {
      await this.client.send(new import_client_s3.PutObjectCommand({ ...params, ContentLength: data.length }));
      return;
    }
    await new import_lib_storage.Upload({
      client: this.client,
      params,
      partSize: PART_SIZE,
      queueSize: 2,
      leavePartsOnError: false
    }).done();
  }
  /** Storage class, server-side encryption and object lock, for every object written. */
  writeOptions(name) {
    const { storageClass, serverSideEncryption, kmsKeyId, objectLock } = this.settings;
    return {
      ...storageClass && isBulkData(name) ? { StorageClass: storageClass } : {},
      ...serverSideEncryption ? { ServerSideEncryption: serverSideEncryption } : {},
      ...kmsKeyId ? { SSEKMSKeyId: kmsKeyId } : {},
      ...objectLock ? {
        ObjectLockMode: objectLock.mode,
        ObjectLockRetainUntilDate: new Date(Date.now() + objectLock.days * DAY_MS),
        // AWS requires Content-MD5 or a checksum on a PUT with retention.
        ChecksumAlgorithm: "SHA256"
      } : {}
    };
  }
  async exists(name, operation) {
    try {
      await this.client.send(new import_client_s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return true;
    } catch (error) {
      if (isNotFound(s3Failure(error))) return false;
      throw this.failure(operation, error);
    }
  }
  /** Whether the stored object has exactly these bytes. */
  async holds(name, data, operation) {
    try {
      return (await this.get(name)).equals(data);
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false;
      throw this.failure(operation, error);
    }
  }
  async get(name) {
    const operation = this.operations.object("read", name);
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await this.client.send(
          new import_client_s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) })
        );
      } catch (error) {
        const failure = s3Failure(error);
        if (isNotFound(failure) && failure.code !== "NoSuchBucket") {
          throw new ObjectNotFoundError(name);
        }
        throw this.failure(operation, error);
      }
      try {
        const bytes = await response.Body?.transformToByteArray() ?? new Uint8Array();
        const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        if (response.ContentLength !== void 0 && body.length !== response.ContentLength) {
          throw Object.assign(new Error(`got ${body.length} of ${response.ContentLength} bytes`), {
            name: "TruncatedBody"
          });
        }
        return body;
      } catch (error) {
        if (attempt < OWN_ATTEMPTS && isTransient(s3Failure(error))) {
          await pause(attempt);
          continue;
        }
        throw this.failure(operation, error);
      }
    }
  }
  async stat(name) {
    try {
      const head = await this.client.send(
        new import_client_s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) })
      );
      return { size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(s3Failure(error))) return void 0;
      throw this.failure(this.operations.object("check", name), error);
    }
  }
  async *list(prefix) {
    let token;
    do {
      let page;
      try {
        page = await this.client.send(
          new import_client_s3.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.key(prefix),
            ...token ? { ContinuationToken: token } : {}
          })
        );
      } catch (error) {
        throw this.failure(this.operations.list(prefix), error);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key?.startsWith(this.prefix)) {
          yield { name: object.Key.slice(this.prefix.length), size: object.Size ?? 0 };
        }
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new StorageError(
          `cannot list ${prefix || "objects"} in ${this.location}: the service cut the listing short without a continuation token`
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : void 0;
    } while (token);
  }
  get objectLockDays() {
    return this.settings.objectLock?.days;
  }
  async extendObjectLock(name, until) {
    const lock = this.settings.objectLock;
    if (!lock) return;
    try {
      await this.client.send(
        new import_client_s3.PutObjectRetentionCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          Retention: { Mode: lock.mode, RetainUntilDate: until }
        })
      );
    } catch (error) {
      throw this.failure(this.operations.object("lock", name), error);
    }
  }
  async delete(name) {
    try {
      await this.client.send(new import_client_s3.DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    } catch (error) {
      const failure = s3Failure(error);
      if (isNotFound(failure) && failure.code !== "NoSuchBucket") return;
      throw this.failure(this.operations.object("delete", name), error);
    }
  }
  key(name) {
    if (name.startsWith("/") || name.split("/").some((part) => part === ".." || part === ".")) {
      throw new StorageError(`invalid object name ${name}`);
    }
    return this.prefix + name;
  }
  failure(operation, error) {
    return storageFailure(operation, this.bucket, error, this.secrets);
  }
};
function pause(attempt) {
  const ms = Math.random() * Math.min(5e3, 100 * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
export {
  S3Storage
};
