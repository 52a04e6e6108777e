/**
 * The Kosmos client for browsers and Node: one typed client per service, generated from
 * proto/kosmos/v1 (src/gen), over the Connect protocol (HTTP/JSON or binary) or gRPC-Web.
 *
 *   const kosmos = createKosmos({ baseUrl: "http://localhost:8080", apiKey: "ksk...." });
 *   const { offers } = await kosmos.recommendations.recommend({
 *     customer: "shops/demo/customers/c-00001", pageSize: 5 });
 *
 * Errors are ConnectError with the gRPC API's code (Code.PermissionDenied, ...); `fieldViolations`
 * reads the BadRequest detail that names the bad field.
 */
import { createClient, type Client, type Interceptor, type Transport, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import { ApiKeyService } from "./gen/kosmos/v1/api_key_service_pb.js";
import { CatalogService } from "./gen/kosmos/v1/catalog_service_pb.js";
import { FeedbackService } from "./gen/kosmos/v1/feedback_service_pb.js";
import { ModelService } from "./gen/kosmos/v1/model_service_pb.js";
import { ProfileService } from "./gen/kosmos/v1/profile_service_pb.js";
import { RecommendationService } from "./gen/kosmos/v1/recommendation_service_pb.js";
import { ShopSettingsService } from "./gen/kosmos/v1/shop_settings_service_pb.js";
import { ExperimentService } from "./gen/kosmos/v1/experiment_service_pb.js";
import { MerchantRulesService } from "./gen/kosmos/v1/rules_service_pb.js";

export * from "./gen/kosmos/v1/common_pb.js";
export * from "./gen/kosmos/v1/api_key_service_pb.js";
export * from "./gen/kosmos/v1/catalog_service_pb.js";
export * from "./gen/kosmos/v1/feedback_service_pb.js";
export * from "./gen/kosmos/v1/model_service_pb.js";
export * from "./gen/kosmos/v1/profile_service_pb.js";
export * from "./gen/kosmos/v1/recommendation_service_pb.js";
export * from "./gen/kosmos/v1/shop_settings_service_pb.js";
export * from "./gen/kosmos/v1/experiment_service_pb.js";
export * from "./gen/kosmos/v1/rules_service_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

export const SERVICES = {
  apiKeys: ApiKeyService,
  catalog: CatalogService,
  feedback: FeedbackService,
  models: ModelService,
  profiles: ProfileService,
  recommendations: RecommendationService,
  settings: ShopSettingsService,
  experiments: ExperimentService,
  rules: MerchantRulesService,
} as const;

export type Kosmos = { [K in keyof typeof SERVICES]: Client<(typeof SERVICES)[K]> };

export interface KosmosOptions {
  /** The HTTP port (KOSMOS_HTTP_LISTEN), e.g. "http://localhost:8080". */
  baseUrl: string;
  /** An API key, sent as `authorization: Bearer <key>` (storefront, admin or operator). */
  apiKey?: string | (() => string);
  /** "connect" (default, JSON unless binary is set) or "grpc-web". */
  protocol?: "connect" | "grpc-web";
  /** Connect protocol only: protobuf binary instead of JSON. */
  binary?: boolean;
  /** A transport of your own (connect-node's createConnectTransport, say); overrides the above. */
  transport?: Transport;
}

function bearer(apiKey: KosmosOptions["apiKey"]): Interceptor {
  return (next) => async (request) => {
    const key = typeof apiKey === "function" ? apiKey() : apiKey;
    if (key) request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };
}

/** Interceptors `createKosmos` puts on its transport: add them to a transport of your own. */
export function kosmosInterceptors(apiKey: KosmosOptions["apiKey"]): Interceptor[] {
  return [bearer(apiKey)];
}

export function createKosmos(options: KosmosOptions): Kosmos {
  const interceptors = kosmosInterceptors(options.apiKey);
  const transport =
    options.transport ??
    (options.protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors })
      : createConnectTransport({ baseUrl: options.baseUrl, useBinaryFormat: options.binary ?? false, interceptors }));
  const out: Record<string, unknown> = {};
  for (const [name, service] of Object.entries(SERVICES)) out[name] = createClient(service, transport);
  return out as Kosmos;
}

/** The fields a BadRequest detail names (INVALID_ARGUMENT), e.g. ["page_size"]. */
export function fieldViolations(error: unknown): { field: string; description: string }[] {
  const err = ConnectError.from(error);
  return err.findDetails(BadRequestSchema).flatMap((d) =>
    d.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
  );
}
