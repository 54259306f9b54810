// The demo takes the tenant from ?tenant= (default "demo") and embeds the widget the way a customer site would.
const tenant = new URLSearchParams(location.search).get("tenant") || "demo";
const tag = document.createElement("script");
tag.src = "/static/widget.js";
tag.async = true;
tag.dataset.tenant = tenant;
tag.dataset.title = "Acme support";
tag.dataset.topics = "Orders,Returns,Product advice";
document.getElementById("snippet").textContent = `<script src="${location.origin}/static/widget.js" data-tenant="${tenant}" async><\/script>`;
document.body.appendChild(tag);
