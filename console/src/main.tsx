import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import { onCredentialChange } from "./session.js";
import { transport } from "./transport.js";
import "./styles.css";

// Refresh settings live here, once: pages only say how often their data goes stale.
const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A failed call is shown at once; the person retries (or the refetch interval does).
      retry: false,
      refetchOnWindowFocus: true,
    },
  },
});

// Nothing cached for the previous credential may show to the next one.
onCredentialChange(() => queryClient.clear());

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
