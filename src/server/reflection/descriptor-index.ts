import { createFileRegistry, type DescFile, type DescMessage, type DescService, type FileRegistry } from "@bufbuild/protobuf";

/**
 * The descriptors reflection may disclose: the files of the served services
 * and the files they import, transitively — nothing else linked into the
 * process. Answers the lookups the reflection protocol asks for.
 */
export interface DescriptorIndex {
  /** Full names of the served services, in the order they were given. */
  readonly serviceNames: readonly string[];
  /** The file of that name (e.g. `anvil/users/v1/users.proto`). */
  file(fileName: string): DescFile | undefined;
  /** The file defining a symbol: service, method, message, field, oneof, enum, enum value or extension. */
  fileContainingSymbol(symbol: string): DescFile | undefined;
  /** The file defining extension `number` of message `extendee`. */
  fileContainingExtension(extendee: string, number: number): DescFile | undefined;
  /** Numbers of every known extension of message `extendee`; undefined when the message is unknown. */
  extensionNumbers(extendee: string): number[] | undefined;
  /** `file` followed by its imports, transitively, each once. */
  withDependencies(file: DescFile): DescFile[];
}

/** Builds the index from the served services' generated descriptors. */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const registry = registryOf(services);
  const symbols = new Map<string, DescFile>();
  for (const file of registry.files) indexSymbols(file, symbols);
  return {
    serviceNames: services.map((s) => s.typeName),
    file: (fileName) => registry.getFile(fileName),
    fileContainingSymbol: (symbol) => symbols.get(symbol),
    fileContainingExtension: (extendee, number) => {
      const message = registry.getMessage(extendee);
      return message ? registry.getExtensionFor(message, number)?.file : undefined;
    },
    extensionNumbers: (extendee) => {
      if (!registry.getMessage(extendee)) return undefined;
      const numbers: number[] = [];
      for (const type of registry) if (type.kind === "extension" && type.extendee.typeName === extendee) numbers.push(type.number);
      return numbers.sort((a, b) => a - b);
    },
    withDependencies: (file) => {
      const seen = new Set<DescFile>();
      const visit = (f: DescFile) => {
        if (seen.has(f)) return;
        seen.add(f);
        f.dependencies.forEach(visit);
      };
      visit(file);
      return [...seen];
    },
  };
}

// One file registry per service — its file plus, through the generated
// descriptors of its imports, their whole closure — merged into one.
function registryOf(services: readonly DescService[]): FileRegistry {
  const registries = services.map((service) =>
    createFileRegistry(service.file.proto, (name) => service.file.dependencies.find((d) => d.proto.name === name)),
  );
  return createFileRegistry(...registries);
}

// Protobuf scoping: enum values are siblings of their enum, so
// `pkg.Color.RED`'s symbol is `pkg.RED` (and `pkg.Msg.RED` when nested).
function indexSymbols(file: DescFile, symbols: Map<string, DescFile>): void {
  const prefix = file.proto.package ? `${file.proto.package}.` : "";
  const add = (name: string) => {
    if (!symbols.has(name)) symbols.set(name, file);
  };
  const addEnumValues = (scope: string, values: readonly { name: string }[]) => values.forEach((v) => add(`${scope}${v.name}`));
  const addMessage = (message: DescMessage) => {
    add(message.typeName);
    message.fields.forEach((f) => add(`${message.typeName}.${f.name}`));
    message.oneofs.forEach((o) => add(`${message.typeName}.${o.name}`));
    message.nestedMessages.forEach(addMessage);
    message.nestedEnums.forEach((e) => {
      add(e.typeName);
      addEnumValues(`${message.typeName}.`, e.values);
    });
    message.nestedExtensions.forEach((x) => add(x.typeName));
  };
  file.messages.forEach(addMessage);
  file.enums.forEach((e) => {
    add(e.typeName);
    addEnumValues(prefix, e.values);
  });
  file.extensions.forEach((x) => add(x.typeName));
  file.services.forEach((s) => {
    add(s.typeName);
    s.methods.forEach((m) => add(`${s.typeName}.${m.name}`));
  });
}
